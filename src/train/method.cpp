#include "train/method.h"

#include "core/error.h"

namespace taia {

const EnumWords<TrainMethod>& train_methods() {
  static const EnumWords<TrainMethod> methods{
      {"lora", TrainMethod::Lora}, {"molora", TrainMethod::Molora}, {"full", TrainMethod::Full}};
  return methods;
}

const char* method_name(TrainMethod m) {
  const std::string* word = word_of(train_methods(), m);
  return word ? word->c_str() : "?";
}

TrainMethod parse_method(const std::string& name, const std::string& origin) {
  const TrainMethod* method = value_of(train_methods(), name);
  TAIA_CHECK(method, origin, ": method expected lora, molora or full, got '", name, "'");
  return *method;
}

}  // namespace taia
