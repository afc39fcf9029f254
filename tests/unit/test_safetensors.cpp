#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace taia {
namespace {

// Dropping the pages of weights used in place from a copy-on-write mapping (a packed copy took
// their place) keeps what was written into the mapping (a merge) and re-reads the rest from the
// file.
TEST(MappedFile, DroppingUnmodifiedPagesKeepsWrittenOnes) {
  const std::string path = test::temp_dir() + "/pages.bin";
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), pages = 8;
  std::vector<uint8_t> bytes(page * pages);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7 + i / page);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  MappedFile map(path, MapAccess::CopyOnWrite);
  auto* w = static_cast<uint8_t*>(map.writable(map.data()));
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); ++i) sum += map.data()[i];  // every page resident
  EXPECT_GT(sum, 0u);
  w[3 * page + 5] = uint8_t(bytes[3 * page + 5] + 1);  // page 3 written: now the process's own
  drop_unmodified_mapped_pages(map.data(), bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i)
    ASSERT_EQ(map.data()[i], i == 3 * page + 5 ? uint8_t(bytes[i] + 1) : bytes[i]) << "byte " << i;
}

// The VmFlags line of the /proc/self/smaps entry that starts at p ("" if none).
std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  char start[32];
  std::snprintf(start, sizeof(start), "%lx-", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind(start, 0) == 0) inside = true;
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

// Weights are read from the mapping 2 MiB at a time where the kernel allows it: the mapping
// carries the huge-page advice ("hg" in smaps), whichever access it was opened with.
TEST(MappedFile, AsksForHugePages) {
  if (!file_exists("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "this kernel has no transparent huge pages: nothing to advise";
  const std::string path = test::temp_dir() + "/huge.bin";
  std::vector<char> bytes(4 << 20, 'x');
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  for (MapAccess access : {MapAccess::ReadOnly, MapAccess::CopyOnWrite}) {
    MappedFile map(path, access);
    const std::string flags = vm_flags_of(map.data());
    ASSERT_FALSE(flags.empty()) << "no smaps entry starts at the mapping";
    EXPECT_NE((flags + " ").find(" hg "), std::string::npos) << flags;
  }
}

TEST(Safetensors, RoundTripsDtypesShapesAndMetadata) {
  const std::string dir = test::temp_dir();
  std::vector<float> a{1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b{f32_to_bf16(1.5f), f32_to_bf16(-3.0f), f32_to_bf16(0.25f)};
  std::vector<uint16_t> c{f32_to_f16(7.0f)};
  write_safetensors(dir + "/t.safetensors",
                    {TensorView("z.first", DType::F32, {2, 3}, a.data()), TensorView("a.second", DType::BF16, {3}, b.data()),
                     TensorView("scalar", DType::F16, {}, c.data())},
                    {{"format", "pt"}});
  MappedFile raw(dir + "/t.safetensors");
  uint64_t header_len;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u) << "header must be padded to 8 bytes";
  SafetensorsFile f(dir + "/t.safetensors");
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "z.first") << "tensors keep the written order";
  EXPECT_EQ(f.tensors()[0].begin, 0u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const SafetensorsTensor* t = f.find("z.first");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(t->data, a.data(), 24), 0);
  EXPECT_EQ(f.find("a.second")->dtype, DType::BF16);
  EXPECT_EQ(bf16_to_f32(reinterpret_cast<const uint16_t*>(f.find("a.second")->data)[1]), -3.0f);
  EXPECT_EQ(f.find("scalar")->shape.size(), 0u);
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST(Safetensors, WriterLeavesNoTemporaryFiles) {
  const std::string dir = test::temp_dir();
  std::vector<float> a{1};
  write_safetensors(dir + "/x.safetensors", {TensorView("a", DType::F32, {1}, a.data())});
  EXPECT_FALSE(file_exists(dir + "/x.safetensors.tmp-" + std::to_string(getpid())));
  EXPECT_THROW(write_safetensors(dir + "/y.safetensors", {TensorView("a", DType::F32, {1}, a.data()),
                                                          TensorView("a", DType::F32, {1}, a.data())}),
               Error);
  EXPECT_FALSE(file_exists(dir + "/y.safetensors"));
}

// The sharded optimizer state is written piece by piece: the file equals write_safetensors' and a
// tensor given too few or too many bytes is an error (no file left behind).
TEST(Safetensors, StreamedWriterEqualsWholeTensorWriter) {
  const std::string dir = test::temp_dir();
  std::vector<float> a{1, 2, 3, 4, 5, 6, 7}, b{-1, -2};
  write_safetensors(dir + "/whole.safetensors", {TensorView("a", DType::F32, {7}, a.data()),
                                                 TensorView("b", DType::F32, {2}, b.data())}, {{"k", "v"}});
  const std::vector<TensorSpec> specs{{"a", DType::F32, {7}}, {"b", DType::F32, {2}}};
  write_safetensors_streamed(dir + "/pieces.safetensors", specs, {{"k", "v"}}, [&](size_t i, const ByteSink& sink) {
    const std::vector<float>& v = i == 0 ? a : b;
    for (size_t k = 0; k < v.size(); k += 3) sink(v.data() + k, std::min<size_t>(3, v.size() - k) * sizeof(float));
  });
  EXPECT_EQ(read_text_file(dir + "/whole.safetensors"), read_text_file(dir + "/pieces.safetensors"));
  for (size_t floats : {size_t(6), size_t(8)}) {
    try {
      write_safetensors_streamed(dir + "/bad.safetensors", specs, {}, [&](size_t i, const ByteSink& sink) {
        std::vector<float> v(i == 0 ? floats : 2, 0.0f);
        sink(v.data(), v.size() * sizeof(float));
      });
      ADD_FAILURE() << "expected an error for " << floats << " floats";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'a' expected 28 bytes"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(file_exists(dir + "/bad.safetensors"));
  }
}

TEST(Safetensors, ShardedIndex) {
  const std::string dir = test::temp_dir();
  std::vector<float> a{1, 2}, b{3, 4, 5};
  write_safetensors(dir + "/model-00001-of-00002.safetensors", {TensorView("a", DType::F32, {2}, a.data())});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", {TensorView("b", DType::F32, {3}, b.data())});
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"metadata": {"total_size": 20}, "weight_map": {"a": "model-00001-of-00002.safetensors",
             "b": "model-00002-of-00002.safetensors"}})";
  SafetensorsCollection c(dir);
  EXPECT_EQ(c.files().size(), 2u);
  ASSERT_NE(c.find("b"), nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(c.find("b")->data)[2], 5.0f);
  EXPECT_EQ(c.all().size(), 2u);
}

TEST(Safetensors, IndexNamingAMissingTensorIsAnError) {
  const std::string dir = test::temp_dir();
  std::vector<float> a{1};
  write_safetensors(dir + "/s1.safetensors", {TensorView("a", DType::F32, {1}, a.data())});
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})";
  EXPECT_THROW(SafetensorsCollection c(dir), Error);
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map": {"a": "../s1.safetensors"}})";
  EXPECT_THROW(SafetensorsCollection c(dir), Error);
}

TEST(Safetensors, JsonErrorsNameFileAndByte) {
  try {
    parse_json_text("{\"a\": [1, 2,, 3]}", "cfg.json");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cfg.json"), std::string::npos) << m;
    EXPECT_NE(m.find("byte 13"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace taia
