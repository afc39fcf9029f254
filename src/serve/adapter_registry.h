// The adapters `taia serve` holds: those given at start (--adapter NAME=PATH: pinned, never
// evicted) and those loaded at run time (POST /v1/adapters, only from under --adapter-dir), at most
// --max-adapters in all, the least recently used run-time one evicted to make room. Thread-safe. A
// request holds its adapter (shared) while it runs, so an evicted or deleted adapter is freed when
// its last request ends, never under a running one.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "model/config.h"
#include "model/lora.h"

namespace taia::serve {

class AdapterRegistry {
 public:
  struct Named {
    std::string name;
    std::shared_ptr<const LoraAdapter> adapter;
  };
  // dir: the folder run-time loads come from (empty: run-time loading off).
  AdapterRegistry(std::vector<Named> pinned, const ModelConfig& config, std::string dir, int64_t max_adapters);

  std::vector<std::string> names() const;  // in load order
  // The adapter serving `name`, marked used now; nullptr when none is loaded under it.
  std::shared_ptr<const LoraAdapter> use(const std::string& name);
  // Loads DIR/relative_path under `name` (ApiError 400 / 403 / 404 / 409 naming what is wrong);
  // returns the names evicted to make room.
  std::vector<std::string> load(const std::string& name, const std::string& relative_path);
  bool remove(const std::string& name);
  Json list() const;  // [{"id", "path", "pinned"}]

 private:
  struct Entry {
    std::string name, path;
    std::shared_ptr<const LoraAdapter> adapter;
    bool pinned = false;
    uint64_t last_used = 0;
  };
  std::string resolve(const std::string& relative_path) const;  // the real path, inside dir_
  const ModelConfig& config_;
  std::string dir_;
  int64_t max_adapters_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;  // use counter: the least recently used has the smallest last_used
};

}  // namespace taia::serve
