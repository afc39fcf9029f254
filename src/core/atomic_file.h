// Crash-safe file output: data goes to a temporary file in the target's folder, is flushed
// and fsynced, then renamed over the target. A reader never sees a partial file.
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>

namespace taia {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // opens "<path>.tmp-<pid>"
  ~AtomicFile();                                 // removes the temporary if not committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // Flush, fsync, rename onto the target, fsync the folder.
  void commit();

 private:
  std::string path_, tmp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Creates a folder and any missing parents (mkdir -p); throws naming the folder.
void make_directories(const std::string& dir);

// Writes a whole text file atomically.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace taia
