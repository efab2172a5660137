// Which target serves the session behind a BackendKeyData, so a CancelRequest reaches the right
// server, with the key that server knows: after a primary flip, or during a read routed to the
// other target, that is another connection's key. Touched at login, logout, flip, routed reads
// and cancel only, never per message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace pgtandem::proxy {

class CancelRegistry {
 public:
  // Keyed by (pid, secret): two targets may hand out the same pid.
  struct Entry {
    size_t target = 0;
    int32_t pid = 0;  // the key that target's server knows for the connection
    int32_t secret = 0;
  };
  void add(int32_t pid, int32_t secret, size_t target) {
    std::lock_guard lock(mu_);
    entries_[key(pid, secret)] = Entry{target, pid, secret};
  }
  // The client's key (pid, secret) now stands for `entry` on entry.target.
  void redirect(int32_t pid, int32_t secret, Entry entry) {
    std::lock_guard lock(mu_);
    entries_[key(pid, secret)] = entry;
  }
  void remove(int32_t pid, int32_t secret) {
    std::lock_guard lock(mu_);
    entries_.erase(key(pid, secret));
  }
  // The target of a session on this replica, if the key matches one.
  bool find(int32_t pid, int32_t secret, size_t* target) const {
    Entry e;
    if (!find(pid, secret, &e)) return false;
    *target = e.target;
    return true;
  }
  bool find(int32_t pid, int32_t secret, Entry* entry) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key(pid, secret));
    if (it == entries_.end()) return false;
    *entry = it->second;
    return true;
  }

 private:
  static uint64_t key(int32_t pid, int32_t secret) {
    return (uint64_t{static_cast<uint32_t>(pid)} << 32) | static_cast<uint32_t>(secret);
  }
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;
};

}  // namespace pgtandem::proxy
