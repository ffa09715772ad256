// The process-wide stop request (SIGINT/SIGTERM): async-signal-safe to set, checked by the loop after
// every accumulation group.
#pragma once

namespace loom::host {

void request_stop();
bool stop_requested();

}  // namespace loom::host
