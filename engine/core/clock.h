#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace rb {

using SteadyTime = std::chrono::steady_clock::time_point;

int64_t now_epoch_ms();
// 2026-11-22T10:53:01.123Z
std::string iso_utc(int64_t epoch_ms);
// 20261122-105301, for file names; local time, which is what an operator reads on a backup.
std::string stamp_local(int64_t epoch_ms);

}  // namespace rb
