// include/taia/taia.h over the library: each call turns the public options into the internal ones,
// runs what the CLI's forward / generate run, and turns the project's errors into api::Error.
#include "taia/taia.h"

#include <algorithm>
#include <cctype>

#include "core/dtype.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/threading.h"
#include "generate/generate.h"
#include "generate/stop_text.h"
#include "in_process.h"
#include "model/adapter.h"
#include "model/config.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/loader.h"
#include "model/modes.h"
#include "model/peft_adapter.h"
#include "model/update_controls.h"
#include "model/tokenizer_loader.h"
#include "tokenizer/chat_template.h"

#ifndef TAIA_VERSION
#error "TAIA_VERSION is defined by src/CMakeLists.txt"
#endif

namespace taia::api {
namespace {

// Runs f, rethrowing the library's errors (and std::bad_alloc's kin) as api::Error.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const api::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw api::Error(e.what());
  }
}

template <typename E>
E word_value(const EnumWords<E>& words, const std::string& word, const char* what) {
  const E* v = value_of(words, word);
  if (v) return *v;
  std::string known;
  for (const auto& [w, value] : words) known += (known.empty() ? "" : ", ") + w;
  fail("[api] ", what, ": expected one of ", known, ", got '", word, "'");
}

DecoderSettings decoder_settings(const RunOptions& o, DType default_kv) {
  DecoderSettings s;
  s.precision = word_value(precision_words(), o.compute, "compute");
  s.kv_dtype = o.kv_dtype.empty() ? default_kv : word_value(kv_dtype_words(), o.kv_dtype, "kv_dtype");
  return s;
}

std::vector<ChatMessage> chat_messages(const std::vector<Message>& messages) {
  std::vector<ChatMessage> out;
  for (const Message& m : messages) out.push_back({m.role, m.content});
  return out;
}

}  // namespace

std::string version() { return TAIA_VERSION; }

std::string run_command(const std::string& command, const std::vector<std::string>& args,
                        const CommandOptions& options, const StepCallback& on_step) {
  return guarded([&] {
    std::vector<std::string> argv{command};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const auto& [key, value] : options) {
      TAIA_CHECK(!key.empty() && key[0] != '-', "[api] option names are given without dashes, got '", key, "'");
      std::string flag = "--" + key;
      std::replace(flag.begin(), flag.end(), '_', '-');
      argv.push_back(flag);
      if (!value.empty()) argv.push_back(value);
    }
    cli::InProcessHooks hooks;
    if (on_step) hooks.on_step = [&](const Json& metrics) { return on_step(metrics.dump()); };
    return cli::run_in_process(argv, hooks).dump();
  });
}

std::string train(const std::string& base, const std::string& data, const std::string& out,
                  const CommandOptions& options, const StepCallback& on_step) {
  return run_command("train", {"--model", base, "--data", data, "--out", out}, options, on_step);
}

std::string evaluate(const std::string& model, const std::string& tasks, const std::string& out,
                     const CommandOptions& options) {
  return run_command("eval", {"--model", model, "--tasks", tasks, "--out", out}, options);
}

struct Adapter::Impl {
  const void* model = nullptr;  // the Model::Impl it was read against
  LoraAdapter lora;
};

struct Model::Impl {
  std::string path;
  std::unique_ptr<taia::Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when none could be loaded
  std::string no_tokenizer_reason;       // then: load_tokenizer's message (none found, or a broken file)
  std::unique_ptr<LoraAdapter> adapter;

  const Tokenizer& tok() const {
    TAIA_CHECK(tokenizer, "[api] ", path, ": no tokenizer (", no_tokenizer_reason, "); pass token ids instead");
    return *tokenizer;
  }

  // A decoder and the adapter it runs (an update-size control's derived one lives as long).
  struct ModeDecoder {
    ModeAdapter run;
    std::unique_ptr<Decoder> decoder;  // declared after `run`: destroyed before the adapter it reads
    Decoder* operator->() const { return decoder.get(); }
    Decoder& operator*() const { return *decoder; }
  };

  // A decoder running options.mode over the adapter (unmerged), configured by options.
  ModeDecoder decoder(const RunOptions& o, DType default_kv) const {
    const LoraAdapter* a = run_adapter(o);
    const std::string mode = o.mode.empty() ? (a ? kDefaultMode : kBaseMode) : o.mode;
    ModeDecoder d{adapter_for_mode(a, parse_mode_spec(mode), "[api]", ": call load_adapter first or pass one"), std::make_unique<Decoder>(*model)};
    d->set_adapter(d.run.adapter, d.run.mask);
    d->configure(decoder_settings(o, default_kv));
    return d;
  }

  // The adapter a run uses: the one in the options (read against this model), else the model's.
  const LoraAdapter* run_adapter(const RunOptions& o) const;

  void check_ids(const std::vector<int32_t>& ids) const {
    TAIA_CHECK(!ids.empty(), "[api] expected at least one token id, got none");
    check_ids_in_vocab(ids, model->config, path);
    TAIA_CHECK(int64_t(ids.size()) <= model->config.max_position_embeddings, "[api] ", ids.size(),
               " ids exceed max_position_embeddings = ", model->config.max_position_embeddings);
  }
};

const LoraAdapter* Model::Impl::run_adapter(const RunOptions& o) const {
  if (!o.adapter) return adapter.get();
  TAIA_CHECK(o.adapter->impl_ && o.adapter->impl_->model == this, "[api] the adapter was read against another model "
             "(its shapes were checked there): load it against ", path);
  return &o.adapter->impl_->lora;
}

Adapter::Adapter(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Adapter Adapter::load(const Model& model, const std::string& path) {
  return guarded([&] {
    auto impl = std::make_shared<Impl>();
    impl->model = model.impl_.get();
    impl->lora = std::move(*taia::load_adapter(path, model.impl_->model->config));
    return Adapter(std::move(impl));
  });
}

Adapter Adapter::from_tensors(const Model& model, const std::map<std::string, Array>& tensors,
                              const std::string& peft_config_json) {
  return guarded([&] {
    const char* where = "the tensors given", *config_where = "the adapter config given";
    const LoraConfig config = peft_config_from_json(parse_json_text(peft_config_json, config_where), config_where);
    std::vector<TensorView> views;
    for (const auto& [name, array] : tensors) {
      TAIA_CHECK(array.data || array.shape.empty(), "[api] ", where, ": tensor '", name, "' has no data");
      views.emplace_back(name, DType::F32, array.shape, const_cast<float*>(array.data));
    }
    auto impl = std::make_shared<Impl>();
    impl->model = model.impl_.get();
    impl->lora = peft_adapter_from_tensors(config, views, where, config_where, model.impl_->model->config);
    return Adapter(std::move(impl));
  });
}

int64_t Adapter::modules() const { return count_modules(impl_->lora, parse_targets("all")); }

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path, const LoadOptions& options) {
  return guarded([&] {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    set_num_threads(options.threads);
    taia::LoadOptions lo;
    if (options.dtype != "auto") lo.linear_dtype = parse_dtype(options.dtype);
    lo.copy_weights = !options.mmap;
    impl->model = load_model(path, lo);
    try {
      impl->tokenizer = load_tokenizer(path);
    } catch (const taia::Error& e) {  // ids-only use is still possible; encode / generate(text) say why not
      impl->no_tokenizer_reason = e.what();
    }
    if (impl->tokenizer)
      TAIA_CHECK(impl->tokenizer->vocab_size() <= impl->model->config.vocab_size, path, ": the tokenizer has ",
                 impl->tokenizer->vocab_size(), " tokens but the model only ", impl->model->config.vocab_size);
    return Model(std::move(impl));
  });
}

std::string Model::config_json() const { return config_to_hf_json(impl_->model->config).dump(2); }
int64_t Model::vocab_size() const { return impl_->model->config.vocab_size; }
bool Model::has_tokenizer() const { return impl_->tokenizer != nullptr; }
bool Model::has_adapter() const { return impl_->adapter != nullptr; }

std::vector<int32_t> Model::encode(const std::string& text, bool add_special) const {
  return guarded([&] { return impl_->tok().encode(text, add_special).ids; });
}

std::string Model::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return guarded([&] { return impl_->tok().decode(ids, skip_special); });
}

std::string Model::apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt) const {
  return guarded([&] {
    const Tokenizer& tok = impl_->tok();
    return taia::encode_chat(tok, chat_template_for(tok), chat_messages(messages), add_generation_prompt).text;
  });
}

std::vector<int32_t> Model::encode_chat(const std::vector<Message>& messages, bool add_generation_prompt) const {
  return guarded([&] {
    const Tokenizer& tok = impl_->tok();
    return taia::encode_chat(tok, chat_template_for(tok), chat_messages(messages), add_generation_prompt).ids;
  });
}

std::vector<std::string> Model::tensor_names() const {
  std::vector<std::string> names;
  for (const TensorView* t : std::as_const(*impl_->model).named_tensors()) names.push_back(t->name);
  return names;
}

Model::Tensor Model::tensor(const std::string& name) const {
  return guarded([&] {
    const TensorView* t = impl_->model->find(name);
    TAIA_CHECK(t, "[api] ", impl_->path, ": no tensor '", name, "' (tensor_names() lists them)");
    Tensor out;
    out.dtype = dtype_name(t->dtype);
    std::transform(out.dtype.begin(), out.dtype.end(), out.dtype.begin(), [](unsigned char c) { return std::tolower(c); });
    out.shape = t->shape;
    if (t->dtype == DType::F32 && t->is_contiguous()) {
      out.view = t->ptr<const float>();
    } else {
      TAIA_CHECK(t->is_contiguous(), "[api] tensor '", name, "' is not contiguous");
      out.values.resize(size_t(t->numel()));
      convert_to_f32(t->dtype, t->data, out.values.data(), out.values.size());
    }
    return out;
  });
}

void Model::load_adapter(const std::string& path) {
  guarded([&] { impl_->adapter = taia::load_adapter(path, impl_->model->config); });
}

std::vector<float> Model::forward(const std::vector<int32_t>& ids, const RunOptions& options) const {
  return guarded([&] {
    impl_->check_ids(ids);
    auto d = impl_->decoder(options, DType::F32);
    KVCache cache(impl_->model->config, int64_t(ids.size()), 0, d->kv_dtype());
    std::vector<float> logits(ids.size() * size_t(impl_->model->config.vocab_size));  // [T, V]
    d->forward(cache, ids.data(), int64_t(ids.size()), logits.data(), /*all_logits=*/true);
    return logits;
  });
}

Generation Model::generate(const std::string& prompt, const GenerateOptions& options) const {
  return guarded([&] {
    const Tokenizer& tok = impl_->tok();
    if (options.chat) return generate(std::vector<Message>{{"user", prompt}}, options);
    return generate(tok.encode(prompt, /*add_special=*/true).ids, options);
  });
}

Generation Model::generate(const std::vector<Message>& messages, const GenerateOptions& options) const {
  return guarded([&] {
    GenerateOptions chat = options;
    chat.chat = true;  // the chat template's end-of-turn ids end the reply
    return generate(encode_chat(messages, /*add_generation_prompt=*/true), chat);
  });
}

Generation Model::generate(const std::vector<int32_t>& prompt_ids, const GenerateOptions& options) const {
  return guarded([&] {
    impl_->check_ids(prompt_ids);
    TAIA_CHECK(options.max_tokens >= 0, "[api] max_tokens: expected >= 0, got ", options.max_tokens);
    TAIA_CHECK(options.temperature >= 0, "[api] temperature: expected >= 0, got ", options.temperature);
    TAIA_CHECK(options.top_p > 0 && options.top_p <= 1, "[api] top_p: expected in (0, 1], got ", options.top_p);
    TAIA_CHECK(options.top_k >= 0, "[api] top_k: expected >= 0, got ", options.top_k);
    TAIA_CHECK(options.repetition_penalty > 0, "[api] repetition_penalty: expected > 0, got ",
               options.repetition_penalty);
    const Tokenizer* tok = impl_->tokenizer.get();
    auto d = impl_->decoder(options, DType::F16);
    taia::GenerateOptions o;
    o.max_new_tokens = options.max_tokens;
    o.sampling.temperature = options.temperature;
    o.sampling.top_k = options.top_k;
    o.sampling.top_p = options.top_p;
    o.sampling.repetition_penalty = options.repetition_penalty;
    o.sampling.seed = options.seed;
    o.stop_at_eos = !options.ignore_eos;
    o.eos_ids = stop_token_ids(impl_->model->config, tok, options.chat);
    if (tok) o.vocab_limit = tok->vocab_size();  // padded embedding rows have no text
    // Text as it is decoded: streamed to on_text, cut at a stop string.
    std::unique_ptr<IncrementalDecoder> stream;
    StopText text(options.stop);
    TAIA_CHECK(options.stop.empty() || tok, "[api] stop strings need a tokenizer (", impl_->path, " has none)");
    if ((options.on_text || !options.stop.empty()) && tok) {
      stream = std::make_unique<IncrementalDecoder>(*tok, /*skip_special=*/true);
      o.on_token = [&](int32_t id) {
        if (text.append(stream->push(id))) return false;
        const std::string certain = text.take_certain();
        return !options.on_text || certain.empty() || options.on_text(certain);
      };
    }
    const GenerateResult r = taia::generate(*d, prompt_ids, o);
    if (stream && !text.stopped()) text.append(stream->flush());
    if (stream && options.on_text) {
      const std::string rest = text.take_rest();
      if (!rest.empty()) options.on_text(rest);
    }
    Generation g;
    g.prompt_ids = prompt_ids;
    g.output_ids = r.output_ids;
    g.text = !tok ? std::string() : text.stopped() ? text.text() : tok->decode(r.output_ids, /*skip_special=*/true);
    g.stopped_at_text = text.stopped();
    g.stopped_at_eos = r.stopped_at_eos;
    g.prefill_tokens_per_s = r.prefill_seconds > 0 ? double(prompt_ids.size()) / r.prefill_seconds : 0.0;
    g.decode_tokens_per_s =
        r.output_ids.size() > 1 && r.decode_seconds > 0 ? double(r.output_ids.size() - 1) / r.decode_seconds : 0.0;
    return g;
  });
}

}  // namespace taia::api
