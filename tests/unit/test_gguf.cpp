#include <cstdio>
#include <set>

#include "core/dtype.h"
#include "core/ggml_quants.h"
#include "core/json_util.h"
#include "model/config.h"
#include "model/init.h"
#include "model/tensor_names.h"
#include "core/error.h"
#include "gguf_builder.h"
#include "io/gguf.h"
#include "test_util.h"

namespace taia {
namespace {

TEST(Gguf, ReadsEveryMetadataType) {
  for (uint32_t version : {2u, 3u}) {
    test::GgufBuilder b(version);
    b.kv_u8("a.u8", 200);
    b.kv_i8("a.i8", -100);
    b.kv_u16("a.u16", 60000);
    b.kv_i16("a.i16", -30000);
    b.kv_u32("a.u32", 4000000000u);
    b.kv_i32("a.i32", -2000000000);
    b.kv_f32("a.f32", 0.5f);
    b.kv_bool("a.bool", true);
    b.kv_str("a.str", "héllo");
    b.kv_u64("a.u64", 1ull << 40);
    b.kv_i64("a.i64", -(1ll << 40));
    b.kv_f64("a.f64", 0.125);
    b.kv_str_array("a.strs", {"x", "", "yz"});
    b.kv_i32_array("a.ints", {1, -2, 3});
    b.kv_u32("general.alignment", 64);
    std::vector<float> t{1, 2, 3, 4, 5, 6};
    b.tensor_f32("w", {3, 2}, t);
    const std::string path = test::temp_dir() + "/m.gguf";
    b.write(path, 64);
    GgufFile g(path);
    EXPECT_EQ(g.version(), version);
    EXPECT_EQ(g.alignment(), 64u);
    EXPECT_EQ(g.get_int("a.u8"), 200);
    EXPECT_EQ(g.get_int("a.i8"), -100);
    EXPECT_EQ(g.get_int("a.u16"), 60000);
    EXPECT_EQ(g.get_int("a.i16"), -30000);
    EXPECT_EQ(g.get_int("a.u32"), 4000000000ll);
    EXPECT_EQ(g.get_int("a.i32"), -2000000000);
    EXPECT_FLOAT_EQ(float(g.get_float_or("a.f32", 0)), 0.5f);
    EXPECT_EQ(g.find("a.bool")->u, 1u);
    EXPECT_EQ(g.get_string("a.str"), "héllo");
    EXPECT_EQ(g.get_int("a.u64"), 1ll << 40);
    EXPECT_EQ(g.get_int("a.i64"), -(1ll << 40));
    EXPECT_DOUBLE_EQ(g.get_float_or("a.f64", 0), 0.125);
    ASSERT_EQ(g.find("a.strs")->arr.size(), 3u);
    EXPECT_EQ(g.find("a.strs")->arr[2].s, "yz");
    EXPECT_EQ(g.find("a.ints")->arr[1].as_int(), -2);
    const GgufTensor* w = g.find_tensor("w");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->shape(), (std::vector<int64_t>{2, 3}));
    std::vector<float> out(6);
    gguf_dequantize(*w, out.data(), path);
    EXPECT_EQ(out, t);
    EXPECT_THROW(g.get_string("a.u8"), Error);
    EXPECT_THROW(g.get_int("missing"), Error);
  }
}

TEST(Gguf, DequantizesF16Bf16AndQ8_0) {
  test::GgufBuilder b;
  std::vector<uint16_t> h{f32_to_f16(1.5f), f32_to_f16(-2.0f)}, bf{f32_to_bf16(3.0f), f32_to_bf16(-0.25f)};
  b.tensor("h", {2}, 1, h.data(), 4);
  b.tensor("bf", {2}, 30, bf.data(), 4);
  // One Q8_0 block: scale 0.5, quants -16..15.
  std::vector<uint8_t> q(34);
  uint16_t d = f32_to_f16(0.5f);
  std::memcpy(q.data(), &d, 2);
  for (int i = 0; i < 32; ++i) q[size_t(2 + i)] = uint8_t(int8_t(i - 16));
  b.tensor("q", {32}, 8, q.data(), q.size());
  const std::string path = test::temp_dir() + "/q.gguf";
  b.write(path);
  GgufFile g(path);
  std::vector<float> out(32);
  gguf_dequantize(*g.find_tensor("h"), out.data(), path);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  gguf_dequantize(*g.find_tensor("bf"), out.data(), path);
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ(out[1], -0.25f);
  gguf_dequantize(*g.find_tensor("q"), out.data(), path);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[size_t(i)], 0.5f * float(i - 16));
}

TEST(Gguf, RefusesUnsupportedQuantTypesAtLoadNamingTheTensor) {
  test::GgufBuilder b;
  std::vector<uint8_t> q8k(292, 0);  // Q8_K: llama.cpp's intermediate type, never a model's
  b.tensor("blk.0.attn_q.weight", {256}, 15, q8k.data(), q8k.size());
  const std::string path = test::temp_dir() + "/q8k.gguf";
  b.write(path);
  GgufFile g(path);  // parsing is fine: the layout is known
  std::vector<float> out(256);
  try {
    gguf_dequantize(*g.find_tensor("blk.0.attn_q.weight"), out.data(), path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q8_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos) << e.what();
  }
}

TEST(Gguf, RejectsVersion1AndBadMagic) {
  const std::string dir = test::temp_dir();
  test::GgufBuilder v1(1);
  v1.write(dir + "/v1.gguf");
  EXPECT_THROW(GgufFile(dir + "/v1.gguf"), Error);
  auto bytes = test::GgufBuilder().bytes();
  bytes[0] = 'X';
  std::ofstream(dir + "/magic.gguf", std::ios::binary).write(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
  EXPECT_THROW(GgufFile(dir + "/magic.gguf"), Error);
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

// sum over i of bits(v[i]) * (2 i + 1) mod 2^64: tests/data/quant/make_fixtures.py's checksum.
std::string checksum(const std::vector<float>& v) {
  uint64_t total = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    total += uint64_t(bits) * (2 * uint64_t(i) + 1);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(total));
  return hex;
}

// Every tensor of files quantized by llama.cpp's llama-quantize (Q4_0 ... Q6_K with --pure,
// token_embd and output included, and a Q4_K_M mix) dequantizes to the F32 values gguf-py's
// reference gives, bit for bit.
TEST(Gguf, DequantizesEveryBlockTypeAsGgufPy) {
  const std::string dir = std::string(TAIA_TESTS_DIR) + "/data/quant";
  const Json goldens = parse_json_file(dir + "/goldens.json");
  std::set<std::string> types;
  int tensors = 0;
  for (auto file = goldens.begin(); file != goldens.end(); ++file) {
    GgufFile g(dir + "/" + file.key());
    for (auto t = file.value().begin(); t != file.value().end(); ++t) {
      const GgufTensor* tensor = g.find_tensor(t.key());
      ASSERT_NE(tensor, nullptr) << file.key() << ": " << t.key();
      EXPECT_EQ(ggml_type_name(tensor->type), t.value()["type"].get<std::string>());
      std::vector<float> out(size_t(tensor->numel()));
      gguf_dequantize(*tensor, out.data(), g.path());
      EXPECT_EQ(checksum(out), t.value()["checksum"].get<std::string>()) << file.key() << ": " << t.key() << " ("
                                                                         << ggml_type_name(tensor->type) << ")";
      EXPECT_EQ(out[0], t.value()["first"][0].get<float>()) << file.key() << ": " << t.key();
      types.insert(ggml_type_name(tensor->type));
      ++tensors;
    }
  }
  EXPECT_EQ(types.size(), 11u);  // F32 norms and the ten block types
  EXPECT_EQ(tensors, 11 * 12);
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

// ggml's reference quantizers, checked where they are fixed points: a tensor llama-quantize wrote,
// dequantized and quantized again by taia, gives back the file's bytes (for every block of every
// tensor of the five types taia writes).
TEST(Gguf, QuantizersReproduceLlamaQuantizeBlocks) {
  const std::string dir = std::string(TAIA_TESTS_DIR) + "/data/quant";
  for (const char* file : {"tiny-q4_0.gguf", "tiny-q4_1.gguf", "tiny-q5_0.gguf", "tiny-q5_1.gguf", "tiny-q8_0.gguf"}) {
    SCOPED_TRACE(file);
    GgufFile g(dir + "/" + file);
    int checked = 0;
    for (const GgufTensor& t : g.tensors()) {
      const DType dtype = gguf_tensor_dtype(t, g.path());
      if (!is_block_dtype(dtype)) continue;
      ASSERT_TRUE(can_quantize(dtype));
      std::vector<float> values(size_t(t.numel()));
      gguf_dequantize(t, values.data(), g.path());
      std::vector<uint8_t> again(t.nbytes);
      quantize_blocks(dtype, values.data(), again.data(), t.numel());
      EXPECT_EQ(std::memcmp(again.data(), t.data, t.nbytes), 0) << t.name;
      ++checked;
    }
    EXPECT_EQ(checked, 9);
  }
  std::vector<float> x(250, 1.0f);
  std::vector<uint8_t> out(84);
  EXPECT_THROW(quantize_blocks(DType::Q2_K, x.data(), out.data(), 250), Error);  // not whole blocks
}

// The K-quant quantizers against llama-quantize itself: the tiny fixture's F32 weights are
// regenerated (init-model's seed 5) and quantized by taia; every block must equal the one
// llama-quantize --pure wrote (Q and K rows are skipped: the GGUF holds them permuted).
TEST(Gguf, KQuantQuantizersEqualLlamaQuantize) {
  const Json cfg = Json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 256,
    "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "bos_token_id": 1,
    "eos_token_id": 2, "tie_word_embeddings": false})");
  auto model = init_model(config_from_hf_json(cfg, "tiny"), 5, DType::F32, InitScheme::Full, 0.05f);
  const std::string dir = std::string(TAIA_TESTS_DIR) + "/data/quant";
  for (auto [file, dtype] : {std::pair{"tiny-q2_k.gguf", DType::Q2_K}, std::pair{"tiny-q3_k.gguf", DType::Q3_K},
                             std::pair{"tiny-q4_k.gguf", DType::Q4_K}, std::pair{"tiny-q5_k.gguf", DType::Q5_K},
                             std::pair{"tiny-q6_k.gguf", DType::Q6_K}}) {
    SCOPED_TRACE(file);
    GgufFile g(dir + "/" + file);
    int64_t blocks = 0, same = 0;
    for (TensorView* t : model->named_tensors()) {
      const std::string gname = gguf_tensor_name(t->name, NormLayout::PreNorm);
      if (t->rank() != 2 || gname.find("attn_q.") != std::string::npos || gname.find("attn_k.") != std::string::npos)
        continue;
      const GgufTensor* stored = g.find_tensor(gname);
      ASSERT_NE(stored, nullptr) << gname;
      ASSERT_EQ(gguf_tensor_dtype(*stored, g.path()), dtype) << gname;
      std::vector<uint8_t> ours(stored->nbytes);
      quantize_blocks(dtype, t->ptr<const float>(), ours.data(), t->numel());
      const int64_t bb = block_bytes(dtype);
      for (size_t off = 0; off < ours.size(); off += size_t(bb), ++blocks)
        same += std::memcmp(ours.data() + off, stored->data + off, size_t(bb)) == 0;
    }
    EXPECT_GT(blocks, 500);
    EXPECT_EQ(same, blocks) << same << " of " << blocks << " blocks equal";
  }
}

// Quantizing random values: every value comes back within half a step of its block's scale
// (a full step for Q4_0 / Q5_0, whose range ends one step short on the side opposite the
// block's largest magnitude: those values are clipped).
TEST(Gguf, QuantizersRoundToTheNearestStep) {
  for (DType dtype : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    auto x = test::random_vector(1024, 9);
    std::vector<uint8_t> q(dtype_bytes(dtype, 1024));
    quantize_blocks(dtype, x.data(), q.data(), 1024);
    std::vector<float> back(1024);
    convert_to_f32(dtype, q.data(), back.data(), back.size());
    const float levels = dtype == DType::Q8_0 ? 127.0f : dtype == DType::Q4_0 ? 8.0f : dtype == DType::Q5_0 ? 16.0f
                         : dtype == DType::Q4_1 ? 15.0f : 31.0f;
    for (int64_t b = 0; b < 32; ++b) {
      float amax = 0, lo = x[size_t(b * 32)], hi = lo;
      for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::abs(x[size_t(b * 32 + j)]));
        lo = std::min(lo, x[size_t(b * 32 + j)]);
        hi = std::max(hi, x[size_t(b * 32 + j)]);
      }
      const bool offset = dtype == DType::Q4_1 || dtype == DType::Q5_1;
      const float step = offset ? (hi - lo) / levels : amax / levels;
      const float bound = (dtype == DType::Q4_0 || dtype == DType::Q5_0 ? 1.0f : 0.5f) * step * 1.01f + 1e-3f * amax;
      for (int j = 0; j < 32; ++j) EXPECT_LE(std::abs(back[size_t(b * 32 + j)] - x[size_t(b * 32 + j)]), bound);
    }
  }
}

}  // namespace
}  // namespace taia
