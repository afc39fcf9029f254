#include "train/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"

namespace taia {
namespace {

void remove_tree(const std::string& d) {
  if (DIR* dir = ::opendir(d.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") std::remove((d + "/" + n).c_str());
    }
    ::closedir(dir);
  }
  ::rmdir(d.c_str());
}

}  // namespace

CheckpointWriter::CheckpointWriter(const std::string& out_dir, int64_t step) {
  make_directories(out_dir);
  dir = out_dir + "/checkpoint-" + std::to_string(step);
  tmp = dir + ".tmp-" + std::to_string(::getpid());
  remove_tree(tmp);
  make_directories(tmp);
}

void CheckpointWriter::commit(const Json& state) {
  write_file_atomic(tmp + "/trainer_state.json", state.dump(2) + "\n");
  write_file_atomic(tmp + "/COMPLETE", "ok\n");
  remove_tree(dir);  // an older copy of the same step (e.g. rerun after resume)
  TAIA_CHECK(std::rename(tmp.c_str(), dir.c_str()) == 0, dir, ": cannot rename checkpoint into place: ",
             std::strerror(errno));
}

void save_optimizer_state(AdamW& opt, const std::string& path) {
  std::vector<TensorView> views;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    const auto& p = opt.params()[i];
    views.emplace_back("m." + p.name, DType::F32, std::vector<int64_t>{int64_t(p.size)}, opt.m(i).data());
    views.emplace_back("v." + p.name, DType::F32, std::vector<int64_t>{int64_t(p.size)}, opt.v(i).data());
  }
  write_safetensors(path, views, {{"steps_taken", std::to_string(opt.steps_taken())}});
}

const float* optimizer_moment(const SafetensorsFile& f, const char* which, const std::string& param, size_t size) {
  const SafetensorsTensor* t = f.find(which + param);
  TAIA_CHECK(t && t->dtype == DType::F32 && t->shape == std::vector<int64_t>{int64_t(size)}, f.path(),
             ": expected an F32 tensor '", which, param, "' of ", size, " elements");
  return reinterpret_cast<const float*>(t->data);
}

int64_t optimizer_steps_taken(const SafetensorsFile& f) {
  auto it = f.metadata().find("steps_taken");
  TAIA_CHECK(it != f.metadata().end(), f.path(), ": missing steps_taken in the metadata");
  return std::stoll(it->second);
}

void load_optimizer_state(AdamW& opt, const std::string& path) {
  SafetensorsFile f(path);
  for (size_t i = 0; i < opt.params().size(); ++i) {
    const auto& p = opt.params()[i];
    std::memcpy(opt.m(i).data(), optimizer_moment(f, "m.", p.name, p.size), p.size * 4);
    std::memcpy(opt.v(i).data(), optimizer_moment(f, "v.", p.name, p.size), p.size * 4);
  }
  opt.set_steps_taken(optimizer_steps_taken(f));
}

void remove_stale_checkpoint_temps(const std::string& out_dir) {
  std::vector<std::string> stale;
  if (DIR* dir = ::opendir(out_dir.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      const std::string n = e->d_name;
      if (n.rfind("checkpoint-", 0) == 0 && n.find(".tmp-") != std::string::npos) stale.push_back(out_dir + "/" + n);
    }
    ::closedir(dir);
  }
  for (const auto& d : stale) remove_tree(d);
}

std::optional<std::string> find_checkpoint(const std::string& path) {
  if (file_exists(path + "/COMPLETE") && file_exists(path + "/trainer_state.json")) return path;
  std::optional<std::string> best;
  int64_t best_step = -1;
  if (DIR* dir = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      const std::string n = e->d_name;
      if (n.rfind("checkpoint-", 0) != 0 || n.find(".tmp") != std::string::npos) continue;
      const std::string full = path + "/" + n;
      if (!file_exists(full + "/COMPLETE")) continue;
      int64_t step = -1;
      try {
        step = std::stoll(n.substr(11));
      } catch (...) {
        continue;
      }
      if (step > best_step) {
        best_step = step;
        best = full;
      }
    }
    ::closedir(dir);
  }
  return best;
}

}  // namespace taia
