// Small helpers the demo's steps share: number formatting, timing, JSONL files, folder removal.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "core/json_util.h"

namespace taia::demo {

std::string fmt(double v, int digits = 1);  // fixed-point with `digits` decimals
double seconds_since(std::chrono::steady_clock::time_point t0);
void write_jsonl(const std::string& path, const std::vector<Json>& records);  // atomically
void remove_folder(const std::string& dir);  // rm -rf, throwing an error that names the folder

}  // namespace taia::demo
