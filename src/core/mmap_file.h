// Memory map of a whole file (RAII): read-only, or copy-on-write (a model's weights used in
// place: a write, e.g. merging an adapter, copies the page it touches; the file never changes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace taia {

enum class MapAccess { ReadOnly, CopyOnWrite };

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path, MapAccess access = MapAccess::ReadOnly);  // throws naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // p (inside the mapping) as a writable pointer; only for a CopyOnWrite mapping.
  void* writable(const void* p) const;

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  MapAccess access_ = MapAccess::ReadOnly;
};

// Tells the kernel that the whole pages of [p, p + n) inside a read-only file mapping are not
// needed any more: they leave the process's resident set (a later read faults them in again from
// the file). Loaders call it on each tensor once copied, so that loading a model does not hold
// the file's pages and the model's own copy at once.
void drop_mapped_pages(const void* p, size_t n);

// The same for a copy-on-write mapping whose pages may have been written (a merge into weights
// used in place): only pages still backed by the file go (/proc/self/pagemap tells); a written
// page stays. Where pagemap cannot be read, nothing is dropped.
void drop_unmodified_mapped_pages(const void* p, size_t n);

std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace taia
