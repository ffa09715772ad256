// Every file the host writes goes through Loom::io (sdk/include/loom/io.h): written to a temporary beside
// the target, fsynced, renamed over it, the directory fsynced. A failure (disk full, read-only file system,
// I/O error) throws WriteError naming the file, the bytes it needed and the space left, after removing the
// temporary — the previous version of the file, if any, is untouched. This header only gives the host's
// code its names in loom::host.
#pragma once

#include <loom/io.h>

namespace loom::host {

using WriteError = io::WriteError;

using io::commit_temp;
using io::free_bytes;
using io::human_bytes;
using io::make_directories;
using io::write_file_atomically;
using io::write_temp;

}  // namespace loom::host
