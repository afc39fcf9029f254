#include "serve/adapter_registry.h"

#include <climits>
#include <cstdlib>

#include "core/error.h"
#include "model/adapter.h"
#include "serve/api.h"

namespace taia::serve {
namespace {

void check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name != "base";
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  if (!ok)
    throw ApiError(400, "invalid_request_error",
                   "adapter name expected 1-64 of A-Z a-z 0-9 - _ . (not 'base'), got '" + name + "'", "name");
}

}  // namespace

AdapterRegistry::AdapterRegistry(std::vector<Named> pinned, const ModelConfig& config, std::string dir,
                                 int64_t max_adapters)
    : config_(config), dir_(std::move(dir)), max_adapters_(max_adapters) {
  for (auto& p : pinned) entries_.push_back({p.name, "", std::move(p.adapter), true, 0});
}

std::vector<std::string> AdapterRegistry::names() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

std::shared_ptr<const LoraAdapter> AdapterRegistry::use(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& e : entries_)
    if (e.name == name) {
      e.last_used = ++clock_;
      return e.adapter;
    }
  return nullptr;
}

std::string AdapterRegistry::resolve(const std::string& relative_path) const {
  if (dir_.empty())
    throw ApiError(403, "invalid_request_error",
                   "loading adapters at run time is off: start taia serve with --adapter-dir DIR");
  if (relative_path.empty() || relative_path[0] == '/')
    throw ApiError(400, "invalid_request_error", "path expected relative to --adapter-dir, got '" + relative_path + "'",
                   "path");
  char root[PATH_MAX], full[PATH_MAX];
  if (!realpath(dir_.c_str(), root)) throw ApiError(500, "server_error", "--adapter-dir " + dir_ + " is missing");
  if (!realpath((dir_ + "/" + relative_path).c_str(), full))
    throw ApiError(404, "invalid_request_error", "no adapter '" + relative_path + "' under --adapter-dir", "path");
  const std::string inside = std::string(root) + "/";
  if (std::string(full) != root && std::string(full).rfind(inside, 0) != 0)  // "..", or a link leading out
    throw ApiError(403, "invalid_request_error", "path '" + relative_path + "' leads outside --adapter-dir", "path");
  return full;
}

std::vector<std::string> AdapterRegistry::load(const std::string& name, const std::string& relative_path) {
  check_name(name);
  const std::string path = resolve(relative_path);
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& e : entries_)
      if (e.name == name)
        throw ApiError(409, "invalid_request_error", "an adapter named '" + name + "' is loaded (DELETE it first)",
                       "name");
  }
  std::shared_ptr<const LoraAdapter> adapter;
  try {
    adapter = load_adapter(path, config_);  // outside the lock: requests go on meanwhile
  } catch (const Error& e) {
    throw ApiError(400, "invalid_request_error", e.what(), "path");
  }
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& e : entries_)  // loaded under the same name meanwhile
    if (e.name == name)
      throw ApiError(409, "invalid_request_error", "an adapter named '" + name + "' is loaded (DELETE it first)", "name");
  std::vector<std::string> evicted;
  while (int64_t(entries_.size()) >= max_adapters_) {
    auto lru = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (!it->pinned && (lru == entries_.end() || it->last_used < lru->last_used)) lru = it;
    if (lru == entries_.end())
      throw ApiError(409, "invalid_request_error", "no room: --max-adapters " + std::to_string(max_adapters_) +
                     " are loaded and all were given at start");
    evicted.push_back(lru->name);
    entries_.erase(lru);
  }
  entries_.push_back({name, relative_path, std::move(adapter), false, ++clock_});
  return evicted;
}

bool AdapterRegistry::remove(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->name == name) {
      entries_.erase(it);
      return true;
    }
  return false;
}

Json AdapterRegistry::list() const {
  std::lock_guard<std::mutex> lk(mu_);
  Json data = Json::array();
  for (const auto& e : entries_)
    data.push_back({{"id", e.name}, {"object", "adapter"}, {"path", e.pinned ? Json(nullptr) : Json(e.path)},
                    {"pinned", e.pinned}});
  return Json{{"object", "list"}, {"data", data}};
}

}  // namespace taia::serve
