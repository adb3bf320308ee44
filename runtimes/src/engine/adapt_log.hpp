// Opt-in log of what the target committed, for `edgespec adapt` (drafters fine-tuned on the
// user's own traffic). Never on unless a directory is given. One JSON line per generation in
// DIR/adapt-log.jsonl (prompt, output text, the drafter that ran), appended with one write so a
// reader never sees half a record; bounded: past max_bytes the oldest half is dropped (the file
// is rewritten beside and renamed over the old one). The directory is created private (0700):
// it holds the user's text.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace es {

class AdaptLog {
public:
    static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
    // Throws ES_ERR_IO when dir cannot be created or written.
    AdaptLog(const std::string &dir, size_t max_bytes = kDefaultMaxBytes);

    // Appends one record; I/O failures are counted (dropped), never thrown: logging must not
    // fail a generation.
    void record(const std::string &prompt, const std::string &output, const std::string &drafter, float temperature);

    const std::string &file() const { return file_; }
    int64_t dropped = 0;

private:
    void trim(size_t incoming);

    std::string file_;
    size_t max_bytes_;
};

}  // namespace es
