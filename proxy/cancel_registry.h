// Which target serves the session behind a BackendKeyData, so a CancelRequest reaches the right
// server. Touched at login, logout and cancel only, never per message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace pgtandem::proxy {

class CancelRegistry {
 public:
  // Keyed by (pid, secret): two targets may hand out the same pid.
  void add(int32_t pid, int32_t secret, size_t target) {
    std::lock_guard lock(mu_);
    entries_[key(pid, secret)] = target;
  }
  void remove(int32_t pid, int32_t secret) {
    std::lock_guard lock(mu_);
    entries_.erase(key(pid, secret));
  }
  // The target of a session on this replica, if the key matches one.
  bool find(int32_t pid, int32_t secret, size_t* target) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key(pid, secret));
    if (it == entries_.end()) return false;
    *target = it->second;
    return true;
  }

 private:
  static uint64_t key(int32_t pid, int32_t secret) {
    return (uint64_t{static_cast<uint32_t>(pid)} << 32) | static_cast<uint32_t>(secret);
  }
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, size_t> entries_;
};

}  // namespace pgtandem::proxy
