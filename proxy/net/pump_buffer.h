// The pumps' buffers (issue 17: memory per held client). A session's two pumps each need a buffer
// only while bytes are in their hands: on the liburing relay, what arrives waits in the ring's
// provided buffers until the pump takes it, so a pump that has nothing left to scan gives its
// buffer back to the worker's pool before it waits, and takes one again when something arrived.
// A thousand idle clients then hold no relay buffer at all (PgBouncer's pktbuf pool does the same:
// a client owns a buffer only while a packet is in flight). On the epoll relay the read lands in
// the pump's buffer, so it keeps it for the session's life.
//
// BufferPool: per worker, one block size, a LIFO free list (the block used last is the one still
// in cache), capped so that a burst's blocks go back to malloc afterwards. Worker thread only.
// PumpBuffer: one pump's buffer; a pooled block, or, while a large message to mirror is kept
// whole, a bigger block of its own (freed, not pooled, when the pump gives it back).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace pgtandem::proxy {

// Per-direction buffer sizes. Messages up to the session's keep limit are seen whole (policy can
// read them); larger ones stream through in buffer-sized pieces, so a 500 MB result never costs
// more than this.
inline constexpr std::size_t kFrontendBufferSize = 16 * 1024;
inline constexpr std::size_t kBackendBufferSize = 32 * 1024;
// Idle blocks a worker's pool keeps per size: more than the sessions that hold one at once on a
// busy worker; past it, a burst's blocks go back to malloc.
inline constexpr std::size_t kPoolMaxIdle = 128;

class BufferPool {
 public:
  BufferPool(std::size_t block_size, std::size_t max_free)
      : block_size_(block_size), max_free_(max_free) {}
  ~BufferPool() {
    for (char* b : free_) std::free(b);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::size_t block_size() const { return block_size_; }

  // An uninitialised block of block_size() bytes (malloc: its pages are touched only as used).
  char* take() {
    ++in_use_;
    if (!free_.empty()) {
      char* b = free_.back();
      free_.pop_back();
      return b;
    }
    return allocate(block_size_);
  }
  void give(char* block) {
    --in_use_;
    if (free_.size() < max_free_) {
      free_.push_back(block);
    } else {
      std::free(block);
    }
  }
  std::size_t in_use() const { return in_use_; }
  std::size_t idle() const { return free_.size(); }

  static char* allocate(std::size_t n) {
    void* p = std::malloc(n);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<char*>(p);
  }

 private:
  std::size_t block_size_;
  std::size_t max_free_;
  std::size_t in_use_ = 0;
  std::vector<char*> free_;
};

class PumpBuffer {
 public:
  PumpBuffer() = default;
  ~PumpBuffer() { give_back(); }
  PumpBuffer(const PumpBuffer&) = delete;
  PumpBuffer& operator=(const PumpBuffer&) = delete;

  void bind(BufferPool& pool) { pool_ = &pool; }
  char* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool held() const { return data_ != nullptr; }

  // A pooled block when none is held.
  void hold() {
    if (data_ != nullptr) return;
    data_ = pool_->take();
    size_ = pool_->block_size();
  }
  // The pump holds no unscanned byte and waits: the block goes back (a grown one to malloc).
  void give_back() {
    if (data_ == nullptr) return;
    if (size_ == pool_->block_size()) {
      pool_->give(data_);
    } else {
      std::free(data_);
    }
    data_ = nullptr;
    size_ = 0;
  }
  // A block of `n` bytes (>= the pool's) holding the first `keep` bytes of the current one.
  void resize(std::size_t n, std::size_t keep) {
    char* b = n == pool_->block_size() ? pool_->take() : BufferPool::allocate(n);
    if (keep > 0) std::memcpy(b, data_, keep);
    give_back();
    data_ = b;
    size_ = n;
  }

 private:
  BufferPool* pool_ = nullptr;
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace pgtandem::proxy
