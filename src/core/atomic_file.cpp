#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace taia {

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  tmp_path_ = path + ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  TAIA_CHECK(file_ != nullptr, path, ": cannot create temporary file ", tmp_path_, ": ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (n == 0) return;
  TAIA_CHECK(std::fwrite(data, 1, n, file_) == n, path_, ": write failed: ", std::strerror(errno));
}

void AtomicFile::commit() {
  TAIA_CHECK(std::fflush(file_) == 0, path_, ": flush failed: ", std::strerror(errno));
  TAIA_CHECK(::fsync(::fileno(file_)) == 0, path_, ": fsync failed: ", std::strerror(errno));
  int rc = std::fclose(file_);
  file_ = nullptr;
  TAIA_CHECK(rc == 0, path_, ": close failed: ", std::strerror(errno));
  TAIA_CHECK(std::rename(tmp_path_.c_str(), path_.c_str()) == 0, path_, ": rename from ", tmp_path_,
             " failed: ", std::strerror(errno));
  committed_ = true;
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : path_.substr(0, std::max<size_t>(slash, 1));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

void make_directories(const std::string& dir) {
  TAIA_CHECK(!dir.empty(), "[make_directories] expected a folder name");
  for (size_t p = dir.find('/', 1);; p = dir.find('/', p + 1)) {
    const std::string part = p == std::string::npos ? dir : dir.substr(0, p);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) fail(part, ": cannot create folder: ", std::strerror(errno));
    if (p == std::string::npos) break;
  }
}

}  // namespace taia
