// Integration-test harness: a minimal HTTP client for the admin listener, and Prometheus text
// parsed into samples.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};
HttpResponse http_get(uint16_t port, const std::string& path,
                      milliseconds timeout = milliseconds(5000));
// Any method, with extra header lines ("Name: value") and a body.
HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::vector<std::string>& headers = {},
                          const std::string& body = "",
                          milliseconds timeout = milliseconds(15000));

// Prometheus text format, parsed into samples.
class Metrics {
 public:
  struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  static Metrics parse(const std::string& text);
  bool has(const std::string& name) const;  // any sample or a # TYPE line with this name
  // Sum of the samples of `name` whose labels include every given label.
  double sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
  const std::vector<Sample>& samples() const { return samples_; }
  const std::string& text() const { return text_; }

 private:
  std::vector<Sample> samples_;
  std::vector<std::string> typed_;
  std::string text_;
};

}  // namespace pgtandem::it
