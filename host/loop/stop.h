// The process-wide stop request (SIGINT/SIGTERM): async-signal-safe to set, checked by the loop after
// every accumulation group.
#pragma once

namespace loom::host {

/// Records a stop request; `signal` is the signal that asked (SIGINT, SIGTERM), 0 for another rank's
/// request. The first signal is kept.
void request_stop(int signal = 0);
bool stop_requested();
/// The exit status of a stopped run: 128 + the first signal that asked (130 for SIGINT, 143 for SIGTERM),
/// 130 when no signal did (a rank that stopped with the others).
int stopped_exit_code();

}  // namespace loom::host
