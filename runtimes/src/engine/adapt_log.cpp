#include "engine/adapt_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/bundle.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace es {

namespace {

bool make_dirs(const std::string &dir) {
    for (size_t i = 1; i <= dir.size(); ++i)
        if (i == dir.size() || dir[i] == '/')
            if (::mkdir(dir.substr(0, i).c_str(), 0700) != 0 && errno != EEXIST) return false;
    return true;
}

bool write_all(int fd, const std::string &s) {
    size_t done = 0;
    while (done < s.size()) {
        const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

AdaptLog::AdaptLog(const std::string &dir, size_t max_bytes) : file_(dir + "/adapt-log.jsonl"), max_bytes_(max_bytes) {
    if (!make_dirs(dir)) throw Error(ES_ERR_IO, "Cannot create the adaptation log directory " + dir + "; pass a writable directory.");
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ES_ERR_IO, "Cannot write the adaptation log " + file_ + "; pass a writable directory.");
    ::close(fd);
}

void AdaptLog::record(const std::string &prompt, const std::string &output, const std::string &drafter, float temperature) {
    char temp[32];
    std::snprintf(temp, sizeof temp, "%g", static_cast<double>(temperature));
    const std::string line = "{\"v\": 1, \"prompt\": " + json::quote(prompt) + ", \"output\": " + json::quote(output) +
                             ", \"drafter\": " + (drafter.empty() ? std::string("null") : json::quote(drafter)) +
                             ", \"temperature\": " + temp + "}\n";
    trim(line.size());
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        ++dropped;
        return;
    }
    // One write of a whole line with O_APPEND: concurrent writers interleave lines, not bytes.
    if (!write_all(fd, line)) ++dropped;
    ::close(fd);
}

void AdaptLog::trim(size_t incoming) {
    struct stat st{};
    if (::stat(file_.c_str(), &st) != 0 || static_cast<size_t>(st.st_size) + incoming <= max_bytes_) return;
    std::string data;
    try {
        data = read_file(file_);
    } catch (const Error &) {
        return;
    }
    // Keep the newest half, from a line start.
    size_t from = data.size() / 2;
    from = data.find('\n', from);
    data = from == std::string::npos ? std::string() : data.substr(from + 1);
    const std::string tmp = file_ + ".tmp" + std::to_string(static_cast<long long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const bool ok = write_all(fd, data);
    if (::close(fd) != 0 || !ok || std::rename(tmp.c_str(), file_.c_str()) != 0) std::remove(tmp.c_str());
}

}  // namespace es
