#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_util.h"

namespace taia {

TensorView SafetensorsTensor::view() const {
  return TensorView(name, dtype, shape, const_cast<uint8_t*>(data));
}

namespace {

// The JSON header: 8 bytes of little-endian length, then that many bytes of one JSON object.
Json read_header(const MappedFile& file, const std::string& path, uint64_t& header_len) {
  const size_t size = file.size();
  TAIA_CHECK(size >= 8, path, ": expected at least 8 bytes (safetensors header length), got ", size, " bytes");
  std::memcpy(&header_len, file.data(), 8);  // little-endian hosts only (x86-64, arm64)
  TAIA_CHECK(header_len <= kSafetensorsMaxHeader, path, ": header length ", header_len,
             " exceeds the limit of ", kSafetensorsMaxHeader, " bytes");
  TAIA_CHECK(header_len <= size - 8, path, ": header length ", header_len, " runs past the end of the file (",
             size, " bytes)");
  TAIA_CHECK(header_len >= 2 && file.data()[8] == '{', path, ": expected the header to start with '{' at byte 8");
  const std::string header(reinterpret_cast<const char*>(file.data()) + 8, header_len);
  Json j = parse_json_text(header, path + " (header)");
  TAIA_CHECK(j.is_object(), path, ": header expected a JSON object");
  return j;
}

void read_shape(const Json& v, const std::string& where, SafetensorsTensor& t) {
  auto sh = v.find("shape");
  TAIA_CHECK(sh != v.end() && sh->is_array(), where, " expected an array 'shape'");
  TAIA_CHECK(sh->size() <= 8, where, " expected at most 8 dimensions, got ", sh->size());
  for (const Json& d : *sh) {
    TAIA_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where,
               " shape expected non-negative integers, got ", d.dump());
    TAIA_CHECK(d.get<uint64_t>() <= uint64_t(1) << 40, where, " dimension ", d.dump(), " is absurdly large");
    t.shape.push_back(d.get<int64_t>());
  }
}

// data_offsets [begin, end) inside the data section, spanning exactly shape x dtype size bytes.
void read_offsets(const Json& v, const std::string& where, uint64_t data_size, SafetensorsTensor& t) {
  auto off = v.find("data_offsets");
  TAIA_CHECK(off != v.end() && off->is_array() && off->size() == 2, where, " expected 'data_offsets' as [begin, end]");
  for (const Json& o : *off)
    TAIA_CHECK(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0), where,
               " data_offsets expected non-negative integers, got ", o.dump());
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  TAIA_CHECK(t.begin <= t.end, where, " data_offsets begin ", t.begin, " is after end ", t.end);
  TAIA_CHECK(t.end <= data_size, where, " data_offsets end ", t.end, " is outside the data section (", data_size,
             " bytes)");
  const uint64_t numel = uint64_t(checked_numel(t.shape, where));
  const uint64_t want = numel * dtype_size(t.dtype);
  TAIA_CHECK(numel <= (uint64_t(1) << 62) / 4 && want == t.end - t.begin, where, " shape x dtype size is ", want,
             " bytes, but data_offsets span ", t.end - t.begin, " bytes");
}

// One header entry: {"dtype", "shape", "data_offsets"}.
SafetensorsTensor read_entry(const std::string& name, const Json& v, const std::string& path, uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "'";
  TAIA_CHECK(v.is_object(), where, " expected an object with dtype, shape, data_offsets");
  auto dt = v.find("dtype");
  TAIA_CHECK(dt != v.end() && dt->is_string(), where, " expected a string 'dtype'");
  SafetensorsTensor t;
  t.name = name;
  if (!try_parse_dtype(dt->get<std::string>(), &t.dtype) || dt->get<std::string>() != dtype_name(t.dtype))
    fail(where, " dtype expected one of F32, F16, BF16, got '", dt->get<std::string>(), "'");
  read_shape(v, where, t);
  read_offsets(v, where, data_size, t);
  return t;
}

// Byte ranges must tile the data section: no overlap, no holes (as the reference reader requires).
void check_tiling(const std::vector<SafetensorsTensor>& tensors, const std::string& path, uint64_t data_size) {
  std::vector<const SafetensorsTensor*> by_offset;
  for (const auto& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (const SafetensorsTensor* t : by_offset) {
    TAIA_CHECK(t->begin >= cursor, path, ": tensor '", t->name, "' bytes [", t->begin, ", ", t->end,
               ") overlap the previous tensor, which ends at ", cursor);
    TAIA_CHECK(t->begin == cursor, path, ": data section has a hole at bytes [", cursor, ", ", t->begin,
               ") before tensor '", t->name, "'");
    cursor = t->end;
  }
  TAIA_CHECK(cursor == data_size, path, ": data section has ", data_size - cursor,
             " trailing bytes not covered by any tensor");
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  uint64_t header_len = 0;
  const Json j = read_header(file_, path, header_len);
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_.size() - data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      TAIA_CHECK(v.is_object(), path, ": '__metadata__' expected an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        TAIA_CHECK(m.value().is_string(), path, ": '__metadata__' entry '", m.key(), "' expected a string value");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsTensor t = read_entry(name, v, path, data_size);
    t.data = file_.data() + data_start + t.begin;
    tensors_.push_back(std::move(t));
  }
  check_tiling(tensors_, path, data_size);
  // File order: the JSON object's key order is not preserved by the parser, offsets are.
  std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) { return a.begin < b.begin; });
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsCollection::SafetensorsCollection(const std::string& path) {
  std::string file = path;
  if (is_directory(path)) {
    if (file_exists(path + "/model.safetensors"))
      file = path + "/model.safetensors";
    else if (file_exists(path + "/model.safetensors.index.json"))
      file = path + "/model.safetensors.index.json";
    else
      fail(path, ": expected model.safetensors or model.safetensors.index.json in the folder");
  }
  if (file.size() >= 5 && file.compare(file.size() - 5, 5, ".json") == 0) {
    Json index = parse_json_file(file);
    auto wm = index.find("weight_map");
    TAIA_CHECK(index.is_object() && wm != index.end() && wm->is_object(), file,
               ": expected an object with a 'weight_map' object");
    const std::string dir = file.find('/') == std::string::npos ? "." : file.substr(0, file.rfind('/'));
    std::set<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      TAIA_CHECK(it.value().is_string(), file, ": weight_map['", it.key(), "'] expected a file name");
      const std::string shard = it.value().get<std::string>();
      TAIA_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..", file,
                 ": weight_map['", it.key(), "'] expected a file name inside the folder, got '", shard, "'");
      shards.insert(shard);
    }
    for (const std::string& shard : shards) files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + shard));
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const SafetensorsTensor* t = find(it.key());
      TAIA_CHECK(t != nullptr, file, ": tensor '", it.key(), "' is listed in weight_map but missing from ",
                 it.value().get<std::string>());
    }
  } else {
    files_.push_back(std::make_unique<SafetensorsFile>(file));
  }
  std::set<std::string> seen;
  for (const auto& f : files_)
    for (const auto& t : f->tensors())
      TAIA_CHECK(seen.insert(t.name).second, f->path(), ": tensor '", t.name, "' appears in more than one shard");
}

const SafetensorsTensor* SafetensorsCollection::find(const std::string& name) const {
  for (const auto& f : files_)
    if (const SafetensorsTensor* t = f->find(name)) return t;
  return nullptr;
}

std::vector<const SafetensorsTensor*> SafetensorsCollection::all() const {
  std::vector<const SafetensorsTensor*> out;
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) out.push_back(&t);
  return out;
}

std::string SafetensorsCollection::describe_location(const std::string& name) const {
  for (const auto& f : files_)
    if (f->find(name)) return f->path();
  return files_.empty() ? std::string("(no files)") : files_.front()->path();
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& tensors,
                                const std::map<std::string, std::string>& metadata, const TensorFiller& fill) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  std::vector<uint64_t> sizes;
  for (const TensorSpec& t : tensors) {
    TAIA_CHECK(names.insert(t.name).second, "[write_safetensors] ", path, ": duplicate tensor name '", t.name, "'");
    TAIA_CHECK(t.name != "__metadata__", "[write_safetensors] ", path, ": '__metadata__' is reserved");
    TAIA_CHECK(!is_block_dtype(t.dtype), "[write_safetensors] ", path, ": tensor '", t.name, "' is ",
               dtype_name(t.dtype), ", a GGUF block type that safetensors cannot hold (dequantize it first)");
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= uint64_t(d);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    sizes.push_back(n);
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const uint64_t len = text.size();
  AtomicFile out(path);
  out.write(&len, 8);
  out.write(text);
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t written = 0;
    fill(i, [&](const void* data, size_t bytes) {
      TAIA_CHECK(written + bytes <= sizes[i], "[write_safetensors] ", path, ": tensor '", tensors[i].name,
                 "' expected ", sizes[i], " bytes, got more");
      out.write(data, bytes);
      written += bytes;
    });
    TAIA_CHECK(written == sizes[i], "[write_safetensors] ", path, ": tensor '", tensors[i].name, "' expected ",
               sizes[i], " bytes, got ", written);
  }
  out.commit();
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const TensorView& t : tensors) {
    TAIA_CHECK(t.is_contiguous(), "[write_safetensors] ", path, ": tensor '", t.name, "' is not contiguous");
    specs.push_back({t.name, t.dtype, t.shape});
  }
  write_safetensors_streamed(path, specs, metadata, [&](size_t i, const ByteSink& sink) {
    sink(tensors[i].data, tensors[i].nbytes());
  });
}

}  // namespace taia
