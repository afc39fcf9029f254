// Runs a fuzz target's entry point over files given on the command line (or every file of the
// folders given), without libFuzzer: the seed corpora and the regression inputs of found
// crashes become ordinary tests in any build (GCC included).
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run_file(const std::string& path, int* count) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ++*count;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    struct stat st {};
    if (::stat(arg.c_str(), &st) != 0) {
      std::fprintf(stderr, "replay: %s: no such file or folder\n", arg.c_str());
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      run_file(arg, &count);
      continue;
    }
    DIR* d = ::opendir(arg.c_str());
    std::vector<std::string> names;
    while (dirent* e = d ? ::readdir(d) : nullptr)
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    if (d) ::closedir(d);
    for (const auto& n : names) run_file(arg + "/" + n, &count);
  }
  std::printf("replayed %d inputs\n", count);
  return count > 0 ? 0 : 1;
}
