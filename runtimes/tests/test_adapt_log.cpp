// Unit test of the opt-in adaptation log (engine/adapt_log.cpp): whole JSON lines, the bound
// (the oldest half dropped, never a partial line), a private directory created on demand.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "check.hpp"
#include "engine/adapt_log.hpp"

using namespace es;

static std::string slurp(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

int main() {
    char tmpl[] = "/tmp/edgespec-adapt-log-XXXXXX";
    const std::string root = mkdtemp(tmpl);
    const std::string dir = root + "/a/b";
    AdaptLog log(dir, 4096);
    struct stat st{};
    CHECK(::stat(dir.c_str(), &st) == 0 && (st.st_mode & 0777) == 0700, "the directory is created private");
    log.record("def f(x):\n\t\"q\"", "    return x\n", "draft", 0.f);
    std::string text = slurp(log.file());
    CHECK(text ==
              "{\"v\": 1, \"prompt\": \"def f(x):\\n\\t\\\"q\\\"\", \"output\": \"    return x\\n\", \"drafter\": \"draft\", "
              "\"temperature\": 0}\n",
          "one escaped JSON line: %s", text.c_str());
    for (int i = 0; i < 200; ++i) log.record("prompt " + std::to_string(i), std::string(40, 'x'), "", 0.7f);
    text = slurp(log.file());
    CHECK(text.size() <= 4096, "bounded: %zu bytes", text.size());
    CHECK(text.find("prompt 199") != std::string::npos, "the newest record is kept");
    CHECK(text.find("prompt 0\"") == std::string::npos, "the oldest went");
    CHECK(!text.empty() && text.front() == '{' && text.back() == '\n', "whole lines only");
    CHECK(text.find("\"drafter\": null") != std::string::npos, "no drafter is null");
    CHECK(log.dropped == 0, "nothing dropped");
    std::system(("rm -rf " + root).c_str());
    std::printf(failures ? "%d failure(s)\n" : "all adapt-log checks passed\n", failures);
    return failures ? 1 : 0;
}
