// taia._taia: the Python module's native half (pybind11). The model, its tokenizer, forward and
// generate, and train, evaluate, merge and export (the CLI's commands run in this process, with
// every option and check the CLI's own) come from the public C++ API (include/taia/taia.h). python/taia/__init__.py builds the Python-facing functions on these.
//
// Long calls release the GIL; Python callbacks (on_text, on_step) take it back for their call.
// A Python exception raised in a callback (KeyboardInterrupt included) stops the run at its next
// boundary (the token, the training step) and is raised again once the library has returned.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "taia/taia.h"

namespace py = pybind11;
using taia::api::Adapter;
using taia::api::Model;

namespace {

// A callback's Python exception, kept until the library call it stopped has returned.
struct PendingError {
  std::optional<py::error_already_set> error;
  // Runs f (GIL held); an exception or a pending signal (Ctrl-C) is kept and false returned.
  template <typename F>
  bool call(F&& f) {
    if (error) return false;
    try {
      const bool go_on = f();
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      return go_on;
    } catch (py::error_already_set& e) {
      error.emplace(std::move(e));
      return false;
    }
  }
  void raise() {
    if (error) {
      py::error_already_set e = std::move(*error);
      error.reset();
      throw e;
    }
  }
};

// Text as a Python str; bytes that are not UTF-8 (a byte token of a multi-byte character cut
// short) become U+FFFD, as the CLI's JSON output and HF's decode(errors="replace") have them.
py::str text_of(const std::string& s) {
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s.data(), py::ssize_t(s.size()), "replace"));
}

// A vector's storage handed to numpy without a copy: the array's base owns the vector.
template <typename T>
py::array_t<T> array_owning(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

taia::api::RunOptions run_options(const std::string& mode, const Adapter* adapter, const std::string& compute,
                                  const std::string& kv_dtype) {
  taia::api::RunOptions o;
  o.mode = mode;
  o.adapter = adapter;
  o.compute = compute;
  o.kv_dtype = kv_dtype;
  return o;
}

std::vector<taia::api::Message> messages_of(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::vector<taia::api::Message> out;
  for (const auto& [role, content] : pairs) out.push_back({role, content});
  return out;
}

py::dict generation_dict(const taia::api::Generation& g) {
  py::dict d;
  d["text"] = text_of(g.text);
  d["prompt_ids"] = g.prompt_ids;
  d["output_ids"] = g.output_ids;
  d["stopped_at_eos"] = g.stopped_at_eos;
  d["stopped_at_text"] = g.stopped_at_text;
  d["prefill_tokens_per_s"] = g.prefill_tokens_per_s;
  d["decode_tokens_per_s"] = g.decode_tokens_per_s;
  return d;
}

py::array_t<float> forward(const Model& m, const std::vector<int32_t>& ids, const Adapter* adapter,
                           const std::string& mode, const std::string& compute, const std::string& kv_dtype) {
  std::vector<float> logits;
  {
    py::gil_scoped_release free;
    logits = m.forward(ids, run_options(mode, adapter, compute, kv_dtype));
  }
  return array_owning(std::move(logits), {py::ssize_t(ids.size()), py::ssize_t(m.vocab_size())});
}

// A weight as a read-only array: a view of the model's F32 storage (kept alive by `owner`, the
// Python model), else its widened / dequantized copy.
py::array tensor(py::object owner, const Model& m, const std::string& name) {
  taia::api::Model::Tensor t = m.tensor(name);
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  py::array_t<float> a = t.view ? py::array_t<float>(shape, t.view, owner) : array_owning(std::move(t.values), shape);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return std::move(a);
}

// prompt: text, ids or a conversation ([(role, content)]).
py::dict generate(const Model& m, const py::object& prompt, const Adapter* adapter, const std::string& mode,
                  const std::string& compute, const std::string& kv_dtype, int64_t max_tokens, float temperature,
                  int64_t top_k, float top_p, float repetition_penalty, uint64_t seed, bool chat, bool ignore_eos,
                  const std::vector<std::string>& stop, const py::object& on_text) {
  taia::api::GenerateOptions o;
  static_cast<taia::api::RunOptions&>(o) = run_options(mode, adapter, compute, kv_dtype);
  o.max_tokens = max_tokens;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.repetition_penalty = repetition_penalty;
  o.seed = seed;
  o.chat = chat;
  o.ignore_eos = ignore_eos;
  o.stop = stop;
  PendingError pending;
  // Every piece checks for Ctrl-C (and hands the piece to on_text, when given).
  o.on_text = [&](const std::string& piece) {
    py::gil_scoped_acquire gil;
    return pending.call([&] { return on_text.is_none() || py::cast<bool>(on_text(text_of(piece))); });
  };
  taia::api::Generation g;
  if (py::isinstance<py::str>(prompt)) {
    const std::string text = prompt.cast<std::string>();
    py::gil_scoped_release free;
    g = m.generate(text, o);
  } else if (py::len(prompt) > 0 && py::isinstance<py::tuple>(prompt[py::int_(0)])) {
    const auto messages = messages_of(prompt.cast<std::vector<std::pair<std::string, std::string>>>());
    py::gil_scoped_release free;
    g = m.generate(messages, o);
  } else {
    const auto ids = prompt.cast<std::vector<int32_t>>();
    py::gil_scoped_release free;
    g = m.generate(ids, o);
  }
  pending.raise();
  return generation_dict(g);
}

Adapter adapter_from_tensors(const Model& m, const py::dict& tensors, const std::string& config_json) {
  std::map<std::string, Adapter::Array> arrays;
  std::vector<py::array_t<float, py::array::c_style>> kept;  // alive until the adapter holds its copy
  for (const auto& [key, value] : tensors) {
    const std::string name = py::cast<std::string>(key);
    kept.push_back(py::cast<py::array_t<float, py::array::c_style>>(value));
    const auto& a = kept.back();
    arrays[name] = Adapter::Array{std::vector<int64_t>(a.shape(), a.shape() + a.ndim()), a.data()};
  }
  return Adapter::from_tensors(m, arrays, config_json);
}

// `taia command args... options` in this process (taia::api::run_command): the JSON it would print.
std::string run_command(const std::string& command, const std::vector<std::string>& args,
                        const taia::api::CommandOptions& options,
                        const std::function<bool(const std::string&)>& on_step) {
  PendingError pending;
  // Each step checks for Ctrl-C (and hands the metrics to on_step, when given).
  auto step = [&](const std::string& metrics) {
    py::gil_scoped_acquire gil;
    return pending.call([&] { return on_step ? on_step(metrics) : true; });
  };
  std::string result;
  {
    py::gil_scoped_release free;
    result = taia::api::run_command(command, args, options, step);
  }
  pending.raise();
  return result;
}

}  // namespace

PYBIND11_MODULE(_taia, m) {
  m.doc() = "taia's native module; use `import taia`";
  py::register_exception<taia::api::Error>(m, "Error", PyExc_ValueError);  // every library error
  m.def("version", &taia::api::version);

  py::class_<Adapter>(m, "Adapter")
      .def_static("load", &Adapter::load, py::arg("model"), py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def_static("from_tensors", &adapter_from_tensors, py::arg("model"), py::arg("tensors"), py::arg("config_json"))
      .def_property_readonly("modules", &Adapter::modules);

  py::class_<Model>(m, "Model")
      .def_static(
          "load",
          [](const std::string& path, const std::string& dtype, int threads, bool mmap) {
            taia::api::LoadOptions o;
            o.dtype = dtype;
            o.threads = threads;
            o.mmap = mmap;
            return Model::load(path, o);
          },
          py::arg("path"), py::arg("dtype") = "auto", py::arg("threads") = 0, py::arg("mmap") = true,
          py::call_guard<py::gil_scoped_release>())
      .def("config_json", &Model::config_json)
      .def_property_readonly("vocab_size", &Model::vocab_size)
      .def_property_readonly("has_tokenizer", &Model::has_tokenizer)
      .def("encode", &Model::encode, py::arg("text"), py::arg("add_special") = true)
      .def(
          "decode",
          [](const Model& self, const std::vector<int32_t>& ids, bool skip_special) {
            return text_of(self.decode(ids, skip_special));
          },
          py::arg("ids"), py::arg("skip_special") = true)
      .def(
          "apply_chat_template",
          [](const Model& self, const std::vector<std::pair<std::string, std::string>>& messages, bool add) {
            return self.apply_chat_template(messages_of(messages), add);
          },
          py::arg("messages"), py::arg("add_generation_prompt") = true)
      .def(
          "encode_chat",
          [](const Model& self, const std::vector<std::pair<std::string, std::string>>& messages, bool add) {
            return self.encode_chat(messages_of(messages), add);
          },
          py::arg("messages"), py::arg("add_generation_prompt") = true)
      .def("load_adapter", &Model::load_adapter, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def("tensor_names", &Model::tensor_names)
      .def("forward", &forward, py::arg("ids"), py::arg("adapter") = nullptr, py::arg("mode") = "",
           py::arg("compute") = "f32", py::arg("kv_dtype") = "")
      .def("generate", &generate, py::arg("prompt"), py::arg("adapter") = nullptr, py::arg("mode") = "",
           py::arg("compute") = "f32", py::arg("kv_dtype") = "", py::arg("max_tokens") = 64,
           py::arg("temperature") = 0.8f, py::arg("top_k") = 0, py::arg("top_p") = 1.0f,
           py::arg("repetition_penalty") = 1.0f, py::arg("seed") = 0, py::arg("chat") = false,
           py::arg("ignore_eos") = false, py::arg("stop") = std::vector<std::string>{},
           py::arg("on_text") = py::none());
  m.def("tensor", &tensor, py::arg("owner"), py::arg("model"), py::arg("name"));
  m.def("run_command", &run_command, py::arg("command"), py::arg("args"), py::arg("options"),
        py::arg("on_step") = nullptr);
}
