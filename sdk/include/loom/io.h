// loom/io.h — durable and checked file I/O, shared by the host and the plugins (library Loom::io).
//
// Part of the SDK: a plugin links it with `target_link_libraries(<plugin> PRIVATE Loom::io)`. It has no
// LibTorch dependency and this header includes no LibTorch header, so it costs a plugin's compile nothing.
//
// Writing. Nothing is ever left half-written under a file's real name: whole files are written to a
// temporary beside the target, fsynced, renamed over it (atomic on POSIX) and the directory fsynced, so
// readers see the old file or the new one and a crash or power loss keeps one of them. Append-only files
// (metric logs) keep a committed offset: a failed append is cut off again, and a resume cuts the file back
// to what a checkpoint recorded.
//
// Reading. Every file read from a run directory, a cache or a config path is opened through InputFile (or
// checked with check_regular_file() when another library opens it): it must be a regular file after
// following symbolic links, of a bounded size. A FIFO, a device (/dev/zero, /dev/random), a directory, a
// socket, or a symlink to one of them is refused at once, before a byte is read, with an error naming the
// path and what it is ("... is a FIFO, not a regular file") — instead of a read that blocks forever or
// hashes an endless stream.
//
// The one failure policy. Every function here reports failure by throwing an io::Error (WriteError for
// writes, directory syncs and directory creation, ReadError for reads): the message names the file, says
// what was being done and gives strerror(errno); a full disk (ENOSPC, EDQUOT) adds the bytes needed and the
// bytes free ("(needed 2.4 MB, 1.1 MB free); free some space and run again"), a read-only file system
// (EROFS) says so. Nothing is reported silently or only logged. Temporaries are removed before the throw,
// and the file being replaced is left as it was. Callers that need their own exception type catch io::Error
// and wrap its what().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace loom::io {

/// Every failure of this library. what() is the whole user-facing message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Writing, syncing, renaming, creating a directory.
class WriteError : public Error {
 public:
  using Error::Error;
};
/// Opening or reading a file, including a file that is not a regular file or is too large.
class ReadError : public Error {
 public:
  using Error::Error;
};

/// No size limit for check_regular_file() / InputFile / read_file() (the file must still be regular).
inline constexpr uint64_t kNoLimit = UINT64_MAX;

// ---- messages ------------------------------------------------------------------------------------------

/// "0 B", "512 B", "2.4 MB", "1.0 GB" (decimal units).
std::string human_bytes(uint64_t bytes);

/// Bytes free for an unprivileged writer on the file system holding `path` (-1 when unknown).
int64_t free_bytes(const std::filesystem::path& path);

/// What a failed write adds to strerror(err): for ENOSPC/EDQUOT " (needed <needed>, <free> free); free
/// some space and run again" (the needed part only when `needed` >= 0; the free space of the file
/// system holding `file`'s directory), for EROFS "; the file system is read-only", else "".
std::string space_note(const std::filesystem::path& file, int err, int64_t needed = -1);

/// "<what> <file>: <strerror(err)><space_note>": the shape of every message of this library.
std::string error_message(std::string_view what, const std::filesystem::path& file, int err, int64_t needed = -1);

// ---- directories ---------------------------------------------------------------------------------------

/// std::filesystem::create_directories with a WriteError naming the directory ("cannot create directory
/// <dir>: <reason>") instead of a filesystem_error.
void make_directories(const std::filesystem::path& dir);

/// fsync of a directory, so that files created, renamed or removed in it survive a crash. Throws
/// WriteError when the directory cannot be opened or synced (an empty path means "."). The one exception:
/// fsync failing with EINVAL, which only says that the file system cannot sync directories at all (some
/// network and FUSE mounts); there is nothing more to make durable, so that counts as done.
void sync_directory(const std::filesystem::path& dir);

// ---- whole-file atomic writes --------------------------------------------------------------------------

/// Replaces `file` with `bytes` atomically: write_temp() then commit_temp(). The parent directory must
/// exist. On failure `file` is untouched and `<file>.tmp` is removed.
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);

/// The two halves of write_file_atomically(), for a caller that must do something in between (rotating
/// checkpoint generations): write_temp() leaves `<file>.tmp` written and fsynced and returns its path
/// (removed again on failure); commit_temp() renames it over `file` and syncs the directory (the
/// temporary is removed when the rename fails). Errors read "cannot write <file>: writing <file>.tmp:
/// <strerror> ...", and end "; its previous version is kept" when `file` exists.
std::filesystem::path write_temp(const std::filesystem::path& file, std::string_view bytes);
void commit_temp(const std::filesystem::path& tmp, const std::filesystem::path& file);

/// A new file opened for writing (created or truncated). Writes never leave a short write unreported;
/// pwrite() is safe to call from several threads at once for disjoint ranges.
class OutputFile {
 public:
  explicit OutputFile(const std::filesystem::path& file);
  ~OutputFile();  // closes; does not sync
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// Appends at the current position.
  void write(const void* data, size_t bytes);
  /// Writes at `offset` without moving the position (thread-safe for disjoint ranges).
  void pwrite(uint64_t offset, const void* data, size_t bytes) const;
  /// Allocates the file's first `bytes` on disk (for a file filled by pwrite()), so a full disk is
  /// reported now, with the size asked for, rather than as a failed write halfway through.
  void reserve(uint64_t bytes);
  /// fsync: the bytes are on disk when this returns.
  void sync();
  /// sync() then close; errors are thrown, not lost in a destructor.
  void close();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

/// Writes `target` atomically, streaming: the bytes go to a temporary beside it whose name is unique to
/// this process and object (`<target>.tmp-<pid>-<n>`, so concurrent writers of one target never share a
/// temporary), and commit() syncs it, renames it over `target` and syncs the directory. Destroyed without
/// commit() (an exception, a bug), the temporary is removed and `target` is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes) { file_->write(data, bytes); }
  void commit();

 private:
  std::filesystem::path target_, temp_;
  std::unique_ptr<OutputFile> file_;
  bool committed_ = false;
};

// ---- append-only files ---------------------------------------------------------------------------------

/// An append-only file opened on first use (a run directory may not exist yet when its writer is made),
/// with the offset last made durable. Used by the metric sinks; their checkpoints record committed().
class AppendFile {
 public:
  explicit AppendFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Until opened, the path may still change (a resumed writer continues its old file). std::logic_error
  /// once open.
  void set_path(std::filesystem::path path);
  bool is_open() const { return fd_ >= 0; }
  /// Opens (creating the file and its directories) if not open yet. Throws WriteError.
  void open();

  /// Appends all of `bytes` or throws WriteError ("cannot write to <file>: ..."); a failed append is cut
  /// off again, so no half record stays behind.
  void append(std::string_view bytes);
  /// fsync (the directory too the first time, the file being new to it); the file's size becomes committed.
  void sync();

  /// Bytes in the file (valid once opened or truncated) and as of the last sync().
  int64_t size() const { return size_; }
  int64_t committed() const { return committed_; }

  /// Resume: cuts the file back to `bytes` committed at a checkpoint. Throws Error when the file is missing
  /// ("<file> is missing") or shorter ("<file> has N bytes, fewer than the M ...": it was not the file that
  /// checkpoint saw). Zero bytes and no file is a run that had not written yet: nothing to do.
  void truncate_to(int64_t bytes);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  int64_t size_ = 0;
  int64_t committed_ = 0;
  bool directory_synced_ = false;
};

// ---- checked reads -------------------------------------------------------------------------------------

/// What is at `path`, in words, following symbolic links: "a regular file", "a directory", "a FIFO",
/// "a character device", "a block device", "a socket", "missing", ... For error messages.
std::string describe(const std::filesystem::path& path);

/// Checks, without opening it, that `file` is a regular file (after following symbolic links) of at most
/// `max_bytes`, and returns its size. Throws ReadError otherwise, naming the path and what it is:
///   "<file> is a FIFO, not a regular file"
///   "<file> is a symbolic link to /dev/zero, a character device, not a regular file"
///   "<file> does not exist"
///   "<file> is 3.2 GB, more than the 1.0 MB a <what> may be"
/// For a library that opens the file itself (LibTorch's archive reader, zlib's gzopen). `what` names the
/// file's role in the size message ("config file", "checkpoint"); empty: "file".
uint64_t check_regular_file(const std::filesystem::path& file, uint64_t max_bytes = kNoLimit, std::string_view what = {});

/// A regular file opened for reading. The open never blocks (O_NONBLOCK, so a FIFO's open returns at once)
/// and the check is made on the opened descriptor (fstat), so what was checked is what is read; the
/// descriptor is then made blocking again. Throws ReadError as check_regular_file().
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& file, uint64_t max_bytes = kNoLimit, std::string_view what = {});
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// Reads up to `bytes` (fewer only at the end of the file); 0 at the end. Throws ReadError.
  size_t read(void* data, size_t bytes);
  /// The rest of the file, at most the size it had when opened (a file that grows meanwhile is not read
  /// past that).
  std::string read_all();
  /// The size when opened.
  uint64_t size() const { return size_; }
  /// The descriptor (for mmap); owned by this object.
  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t read_ = 0;
};

/// The whole of `file`, checked as InputFile.
std::string read_file(const std::filesystem::path& file, uint64_t max_bytes = kNoLimit, std::string_view what = {});

}  // namespace loom::io
