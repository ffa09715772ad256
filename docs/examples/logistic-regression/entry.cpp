// The library's one entry point: register each feature explicitly.
#include "logistic_regression.h"

static void register_features(loom::Registrar& registrar) {
  registrar.add<loom::Model>(example::LogisticRegression::info(), [](const loom::CreateContext& ctx) {
    return std::make_shared<example::LogisticRegression>(ctx);
  });
}

LOOM_PLUGIN_LIBRARY("loom_model_logistic_regression", "1.0.0", register_features)
