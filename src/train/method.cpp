#include "train/method.h"

#include "core/error.h"

namespace taia {

const std::vector<std::pair<std::string, TrainMethod>>& train_methods() {
  static const std::vector<std::pair<std::string, TrainMethod>> methods{
      {"lora", TrainMethod::Lora}, {"molora", TrainMethod::Molora}, {"full", TrainMethod::Full}};
  return methods;
}

const char* method_name(TrainMethod m) {
  for (const auto& [name, method] : train_methods())
    if (method == m) return name.c_str();
  return "?";
}

TrainMethod parse_method(const std::string& name, const std::string& origin) {
  for (const auto& [n, method] : train_methods())
    if (n == name) return method;
  fail(origin, ": method expected lora, molora or full, got '", name, "'");
}

}  // namespace taia
