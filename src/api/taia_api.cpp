// include/taia/taia.h over the library: each call turns the public options into the internal ones,
// runs what the CLI's forward / generate run, and turns the project's errors into api::Error.
#include "taia/taia.h"

#include <algorithm>

#include "core/dtype.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/threading.h"
#include "generate/generate.h"
#include "model/adapter.h"
#include "model/config.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/loader.h"
#include "model/modes.h"
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
  const EnumWords<Precision> precisions{{precision_name(Precision::F32), Precision::F32},
                                        {precision_name(Precision::BF16), Precision::BF16}};
  DecoderSettings s;
  s.precision = word_value(precisions, o.compute, "compute");
  s.kv_dtype = o.kv_dtype.empty() ? default_kv : word_value(kv_dtype_words(), o.kv_dtype, "kv_dtype");
  return s;
}

}  // namespace

std::string version() { return TAIA_VERSION; }

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

  // A decoder running options.mode over the adapter (unmerged), configured by options.
  std::unique_ptr<Decoder> decoder(const RunOptions& o, DType default_kv) const {
    const std::string mode = o.mode.empty() ? (adapter ? kDefaultMode : kBaseMode) : o.mode;
    const ModuleMask mask = parse_mode(mode);
    const bool any = std::any_of(mask.begin(), mask.end(), [](bool b) { return b; });
    TAIA_CHECK(!any || adapter, "[api] mode '", mode, "' needs an adapter: call load_adapter first");
    auto d = std::make_unique<Decoder>(*model);
    d->set_adapter(adapter.get(), mask);
    d->configure(decoder_settings(o, default_kv));
    return d;
  }

  void check_ids(const std::vector<int32_t>& ids) const {
    TAIA_CHECK(!ids.empty(), "[api] expected at least one token id, got none");
    for (size_t i = 0; i < ids.size(); ++i)
      TAIA_CHECK(ids[i] >= 0 && ids[i] < model->config.vocab_size, "[api] token id ", ids[i], " at index ", i,
                 " is outside the vocabulary of ", path, " (", model->config.vocab_size, " tokens)");
    TAIA_CHECK(int64_t(ids.size()) <= model->config.max_position_embeddings, "[api] ", ids.size(),
               " ids exceed max_position_embeddings = ", model->config.max_position_embeddings);
  }
};

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
    std::vector<int32_t> ids;
    if (options.chat)
      ids = encode_chat(tok, chat_template_for(tok), {{"user", prompt}}, /*add_generation_prompt=*/true).ids;
    else
      ids = tok.encode(prompt, /*add_special=*/true).ids;
    return generate(ids, options);
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
    std::unique_ptr<IncrementalDecoder> stream;
    if (options.on_text && tok) {
      stream = std::make_unique<IncrementalDecoder>(*tok, /*skip_special=*/true);
      o.on_token = [&](int32_t id) { return options.on_text(stream->push(id)); };
    }
    const GenerateResult r = taia::generate(*d, prompt_ids, o);
    if (stream) options.on_text(stream->flush());
    Generation g;
    g.prompt_ids = prompt_ids;
    g.output_ids = r.output_ids;
    g.text = tok ? tok->decode(r.output_ids, /*skip_special=*/true) : std::string();
    g.stopped_at_eos = r.stopped_at_eos;
    g.prefill_tokens_per_s = r.prefill_seconds > 0 ? double(prompt_ids.size()) / r.prefill_seconds : 0.0;
    g.decode_tokens_per_s =
        r.output_ids.size() > 1 && r.decode_seconds > 0 ? double(r.output_ids.size() - 1) / r.decode_seconds : 0.0;
    return g;
  });
}

}  // namespace taia::api
