// notify.webhook, notify.email, http.sample and the stdlib notices (stdlib/notice.lua), against
// a real HTTP receiver (tests/support/http_server.py) and a real SMTP sink (Debian's
// python3-aiosmtpd, tests/support/smtp_sink.py), both on 127.0.0.1 in a temp dir.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/support.h"

using namespace rb::test;
using rb::json;

namespace {

std::string made(const std::string& dir) {
  std::filesystem::create_directories(dir);
  return dir;
}

// The SMTP sink; fails the test (with the command that installs it) when aiosmtpd is missing.
class SmtpSink {
 public:
  explicit SmtpSink(const std::string& dir)
      : dir_(made(dir)), port_(free_port()),
        child_({"/usr/bin/python3", std::string(RUNBOOK_TEST_SUPPORT_DIR) + "/smtp_sink.py",
                std::to_string(port_), dir},
               {}, dir + "/sink.log") {
    if (!wait_for_port(port_, 15000))
      throw std::runtime_error("the SMTP sink did not start (needs Debian's python3-aiosmtpd: "
                               "apt-get install python3-aiosmtpd); its log: " + read_file(dir + "/sink.log"));
  }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::vector<json> mails() const {
    std::vector<json> out;
    for (int i = 1;; ++i) {
      std::string p = dir_ + "/mail-" + std::to_string(i) + ".json";
      if (!std::filesystem::exists(p)) break;
      out.push_back(json::parse(read_file(p)));
    }
    return out;
  }

 private:
  std::string dir_;
  int port_;
  Child child_;
};

std::vector<json> posts(const std::string& dir) {
  std::vector<json> out;
  std::ifstream in(dir + "/requests.log");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string journal_text(const std::string& journal) {
  std::string s;
  for (const std::string& f : {journal, journal + "-wal"})
    if (std::filesystem::exists(f)) s += read_file(f);
  return s;
}

std::map<std::string, std::string> env_of(const TempDir& d) { return {{"RUNBOOK_JOURNAL", d / "j.db"}}; }

std::string b64decode(const std::string& in) {
  static const std::string t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    auto p = t.find(c);
    if (p == std::string::npos) continue;
    val = (val << 6) + static_cast<int>(p);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

}  // namespace

// A webhook is a change: the dry-run shows the message and sends nothing; the live run sends it
// once; the URL (Slack's token is its path) reaches neither the output nor the journal; a
// replay sends nothing. The path is redacted even where the URL turns up in a line the runbook
// writes after the call (the call registers it).
TEST(Notify, WebhookPlannedInADryRunSentOnceLiveItsTokenRedacted) {
  TempDir d;
  HttpServer recv(d / "recv");
  std::string hook = recv.url("/services/T0001/B0002/XXtok3nXXsecretXX");
  write_file(d / "rb.lua", R"(
runbook { name = "hook", version = "1.0.0", params = { hook = { type = "url", secret = true } } }
step("tell", function(p)
  local r = notify.webhook{ url = p.hook, text = "🚨 ROLLBACK IN PROGRESS: checkout API\nStatus: starting", format = "slack" }
  log.info("sent " .. r.bytes .. " bytes, status " .. r.status)
  local other = "/services/T0001/B0002/" .. string.rep("XX", 1) .. "tok3nXXsecretXX"
  log.info("the receiver's path: " .. other)
end)
)");
  auto dry = run_cli({"exec", d / "rb.lua", "--dry-run", "-p", "hook=" + hook}, env_of(d));
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_EQ(recv.changing_requests(), 0) << "a dry-run sent the notice";
  EXPECT_NE(dry.out.find("would POST"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("ROLLBACK IN PROGRESS: checkout API"), std::string::npos) << dry.out;

  auto live = run_cli({"exec", d / "rb.lua", "-p", "hook=" + hook}, env_of(d));
  ASSERT_EQ(live.code, 0) << live.out << live.err;
  auto got = posts(d / "recv");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["path"], "/services/T0001/B0002/XXtok3nXXsecretXX");
  json body = json::parse(got[0]["body"].get<std::string>());
  EXPECT_EQ(body["text"], "🚨 ROLLBACK IN PROGRESS: checkout API\nStatus: starting");
  EXPECT_NE(live.out.find("status 200"), std::string::npos) << live.out;
  for (const auto* out : {&dry.out, &dry.err, &live.out, &live.err})
    EXPECT_EQ(out->find("XXtok3nXXsecretXX"), std::string::npos) << *out;
  EXPECT_EQ(journal_text(d / "j.db").find("XXtok3nXXsecretXX"), std::string::npos)
      << "the webhook's token is in the journal";

  auto replay = run_cli({"replay", "last"}, env_of(d));
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_EQ(posts(d / "recv").size(), 1u) << "a replay sent the notice again";
}

TEST(Notify, WebhookTeamsFormatAndJsonBody) {
  TempDir d;
  HttpServer recv(d / "recv");
  write_file(d / "rb.lua", R"(
runbook { name = "hook", version = "1.0.0", params = { hook = { type = "url" } } }
step("tell", function(p)
  notify.webhook{ url = p.hook, text = "rollback done", format = "teams" }
  notify.webhook{ url = p.hook, json = { blocks = { { type = "section", text = { type = "mrkdwn", text = "*done*" } } } } }
end)
)");
  auto r = run_cli({"exec", d / "rb.lua", "-p", "hook=" + recv.url("/hook")}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto got = posts(d / "recv");
  ASSERT_EQ(got.size(), 2u);
  json teams = json::parse(got[0]["body"].get<std::string>());
  EXPECT_EQ(teams["@type"], "MessageCard");
  EXPECT_EQ(teams["text"], "rollback done");
  json blocks = json::parse(got[1]["body"].get<std::string>());
  EXPECT_EQ(blocks["blocks"][0]["text"]["text"], "*done*");
}

// A receiver that answers 500 is tried again (retries = 1: two requests), then the call fails
// naming itself and the status; a dead one fails within its timeout; bad arguments name the
// argument and exit 2 (a bug in the runbook, not a failed procedure).
TEST(Notify, WebhookFailuresNameTheCall) {
  TempDir d;
  HttpServer recv(d / "recv");
  write_file(d / "recv/post_status", "500");
  write_file(d / "rb.lua", R"(
runbook { name = "hook", version = "1.0.0", params = { hook = { type = "url" } } }
step{ "tell", timeout = "20s", run = function(p)
  notify.webhook{ url = p.hook, text = "x", retries = 1, retry_delay = "100ms", timeout = "3s" }
end }
)");
  auto r = run_cli({"exec", d / "rb.lua", "-p", "hook=" + recv.url("/hook")}, env_of(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("notify.webhook"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("returned 500"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(posts(d / "recv").size(), 2u);

  int dead = free_port();
  auto t0 = std::chrono::steady_clock::now();
  auto r2 = run_cli({"exec", d / "rb.lua", "-p", "hook=http://127.0.0.1:" + std::to_string(dead) + "/hook"}, env_of(d));
  EXPECT_EQ(r2.code, 1) << r2.out << r2.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  EXPECT_NE((r2.out + r2.err).find("notify.webhook"), std::string::npos) << r2.out << r2.err;

  write_file(d / "bad.lua", R"(
runbook { name = "hook", version = "1.0.0" }
step("tell", function(p) notify.webhook{ url = "http://127.0.0.1:1/x", text = "a", json = { text = "b" } } end)
)");
  auto r3 = run_cli({"exec", d / "bad.lua"}, env_of(d));
  EXPECT_EQ(r3.code, 2) << r3.out << r3.err;
  EXPECT_NE((r3.out + r3.err).find("notify.webhook"), std::string::npos) << r3.out << r3.err;
  EXPECT_NE((r3.out + r3.err).find("exactly one of json"), std::string::npos) << r3.out << r3.err;
}

// One mail through a real SMTP server: envelope, headers (a UTF-8 subject encoded), the body as
// written; AUTH's password goes to the server and nowhere else.
TEST(Notify, EmailThroughARealSmtpServer) {
  TempDir d;
  SmtpSink sink(d / "smtp");
  write_file(d / "rb.lua", R"(
runbook { name = "mail", version = "1.0.0",
          params = { smtp = { type = "string" }, pw = { type = "string", secret = true } } }
step("mail", function(p)
  local r = notify.email{ smtp = p.smtp, from = "runbook@example.com", to = { "team@example.com", "oncall@example.com" },
                          subject = "[ACTION] Initiating Rollback – checkout ✓", body = "Line one\n.\nLine three",
                          username = "ops", password = p.pw }
  log.info("mailed " .. r.recipients .. " recipients, SMTP " .. r.code)
end)
)");
  write_file(d / "p.env", "pw=smtp-Passw0rd-secret\n");
  ::chmod((d / "p.env").c_str(), 0600);
  auto dry = run_cli({"exec", d / "rb.lua", "--dry-run", "-p", "smtp=" + sink.url(), "--param-file", d / "p.env"}, env_of(d));
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(sink.mails().empty()) << "a dry-run sent mail";
  EXPECT_NE(dry.out.find("would mail team@example.com, oncall@example.com"), std::string::npos) << dry.out;

  auto r = run_cli({"exec", d / "rb.lua", "-p", "smtp=" + sink.url(), "--param-file", d / "p.env"}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto mails = sink.mails();
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0]["from"], "runbook@example.com");
  EXPECT_EQ(mails[0]["to"], json::array({"team@example.com", "oncall@example.com"}));
  std::string data = mails[0]["data"];
  EXPECT_NE(data.find("Subject: =?UTF-8?B?"), std::string::npos) << data;
  EXPECT_NE(data.find("To: team@example.com"), std::string::npos) << data;
  EXPECT_NE(data.find("Content-Type: text/plain; charset=utf-8"), std::string::npos) << data;
  // The subject decodes back to what was written.
  std::string subject;
  for (size_t at = data.find("=?UTF-8?B?"); at != std::string::npos; at = data.find("=?UTF-8?B?", at + 1)) {
    size_t end = data.find("?=", at + 10);
    subject += b64decode(data.substr(at + 10, end - at - 10));
  }
  EXPECT_EQ(subject, "[ACTION] Initiating Rollback – checkout ✓");
  EXPECT_NE(data.find("Line one\r\n.\r\nLine three"), std::string::npos) << "the lone dot line did not survive\n" << data;
  EXPECT_NE(read_file(d / "smtp/auth.log").find("smtp-Passw0rd-secret"), std::string::npos) << "AUTH did not reach the server";
  EXPECT_EQ(journal_text(d / "j.db").find("smtp-Passw0rd-secret"), std::string::npos);
  EXPECT_EQ((r.out + r.err).find("smtp-Passw0rd-secret"), std::string::npos);
  EXPECT_NE(r.out.find("mailed 2 recipients, SMTP 250"), std::string::npos) << r.out;
}

TEST(Notify, EmailRefusedOrMalformedFailsClearly) {
  TempDir d;
  SmtpSink sink(d / "smtp");
  write_file(d / "smtp/reject", "");
  write_file(d / "rb.lua", R"(
runbook { name = "mail", version = "1.0.0", params = { smtp = { type = "string" }, to = { type = "string" },
          subject = { type = "string", default = "rollback" } } }
step{ "mail", timeout = "20s", run = function(p)
  notify.email{ smtp = p.smtp, from = "runbook@example.com", to = p.to, subject = p.subject, body = "x", timeout = "5s" }
end }
)");
  auto r = run_cli({"exec", d / "rb.lua", "-p", "smtp=" + sink.url(), "-p", "to=team@example.com"}, env_of(d));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("notify.email"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("550"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(sink.mails().empty());

  // Header injection through the recipient or the subject is a bad argument, not a mail.
  for (const auto& [arg, value] : std::vector<std::pair<std::string, std::string>>{
           {"to", "team@example.com\r\nBcc: all@example.com"}, {"subject", "x\r\nBcc: all@example.com"},
           {"to", "not an address"}}) {
    std::vector<std::string> args{"exec", d / "rb.lua", "-p", "smtp=" + sink.url(), "-p", arg + "=" + value};
    if (arg != "to") args.insert(args.end(), {"-p", "to=team@example.com"});
    auto b = run_cli(args, env_of(d));
    EXPECT_EQ(b.code, 2) << arg << "=" << value << "\n" << b.out << b.err;
    EXPECT_NE((b.out + b.err).find("bad argument '" + arg + "' to 'notify.email'"), std::string::npos) << b.out << b.err;
  }
  std::remove((d / "smtp/reject").c_str());
  int dead = free_port();
  auto t0 = std::chrono::steady_clock::now();
  auto r2 = run_cli({"exec", d / "rb.lua", "-p", "smtp=smtp://127.0.0.1:" + std::to_string(dead), "-p", "to=team@example.com"},
                    env_of(d));
  EXPECT_EQ(r2.code, 1) << r2.out << r2.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
}

// http.sample: error rate and percentiles from many requests, one journal entry; a failing or
// dead server is counted, not raised.
TEST(HttpSample, ErrorRateAndPercentilesOfALiveServer) {
  TempDir d;
  HttpServer srv(d / "srv");
  write_file(d / "rb.lua", R"(
runbook { name = "sample", version = "1.0.0", params = { url = { type = "url" }, n = { type = "int", default = 40 } } }
step{ "sample", timeout = "60s", run = function(p)
  local s = http.sample{ url = p.url, n = p.n, concurrency = 4, timeout = "2s" }
  log.info(string.format("n=%d errors=%d rate=%.2f p50=%s p95=%s p99=%s s200=%s s503=%s serr=%s",
    s.n, s.errors, s.error_rate, s.p50_ms, s.p95_ms, s.p99_ms, tostring(s.statuses["200"]),
    tostring(s.statuses["503"]), tostring(s.statuses.error)))
  assert(s.p50_ms <= s.p95_ms and s.p95_ms <= s.p99_ms and s.p99_ms <= s.max_ms, "percentiles in order")
end }
)");
  auto ok = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url("/health")}, env_of(d));
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("n=40 errors=0 rate=0.00"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("s200=40 s503=nil serr=nil"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.out.find("p95=0 "), std::string::npos) << "no latency measured\n" << ok.out;

  srv.set_status(503);
  auto bad = run_cli({"exec", d / "rb.lua", "-p", "url=" + srv.url("/health"), "-p", "n=10"}, env_of(d));
  ASSERT_EQ(bad.code, 0) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("n=10 errors=10 rate=1.00"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("s503=10"), std::string::npos) << bad.out;

  int dead = free_port();
  auto gone = run_cli({"exec", d / "rb.lua", "-p", "url=http://127.0.0.1:" + std::to_string(dead) + "/", "-p", "n=8"},
                      env_of(d));
  ASSERT_EQ(gone.code, 0) << gone.out << gone.err;
  EXPECT_NE(gone.out.find("n=8 errors=8 rate=1.00"), std::string::npos) << gone.out;
  EXPECT_NE(gone.out.find("serr=8"), std::string::npos) << gone.out;

  // A slow endpoint: each request stops at its timeout, and the step's deadline bounds it all.
  write_file(d / "slow.lua", R"(
runbook { name = "slow", version = "1.0.0", params = { url = { type = "url" } } }
step{ "sample", timeout = "3s", run = function(p)
  http.sample{ url = p.url, duration = "1m", concurrency = 2, timeout = "30s" }
end }
)");
  auto t0 = std::chrono::steady_clock::now();
  auto slow = run_cli({"exec", d / "slow.lua", "-p", "url=" + srv.url("/slow")}, env_of(d));
  EXPECT_EQ(slow.code, 1) << slow.out << slow.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(12)) << slow.out;
  EXPECT_NE((slow.out + slow.err).find("timeout"), std::string::npos) << slow.out << slow.err;
}

// The stdlib notices fill the seeds' templates from the run: the start notice names the run,
// progress counts the steps done and estimates from their time, the end says how it went —
// also from an `always` step after a failure, through `run.failed`. A replay renders the same.
TEST(Notice, TemplatesAreFilledFromTheRun) {
  TempDir d;
  HttpServer recv(d / "recv");
  write_file(d / "rb.lua", R"(
local notice = require "notice"
runbook { name = "notice-demo", version = "2.1.0", params = { hook = { type = "url" }, fail = { type = "bool", default = false } } }
local to = { webhook = "", format = "generic" }
step("start", function(p)
  to.webhook = p.hook
  notice.send(notice.start{ issue = "checkout answers 500", severity = "P1", eta = "20m", impact = "all buyers" }, to)
end)
step("one", function(p) sleep("200ms") end)
step("progress", function(p)
  local n = notice.progress{ issue = "checkout answers 500", latest = "code at v1.0.0" }
  log.info("percent " .. n.percent .. " eta " .. tostring(n.eta ~= nil))
  notice.send(n, to)
  if p.fail then error("the health check failed", 0) end
end)
step{ "end", always = true, run = function(p)
  local n = notice.finish{ outcome = run.failed and "failed" or "succeeded", issue = "checkout answers 500",
                           status = run.failed and (run.failed.step_name .. ": " .. run.failed.error) or nil,
                           error_rate = 0.4, response_ms = 120 }
  notice.send(n, to)
  log.info(notice.log_entry{ feature = "checkout", method = "git", verification = n.ok and "success" or "failed" }.text)
  log.info(notice.users{ product = "SizeWise Suite", impact = "checkout" }.subject)
end }
)");
  auto r = run_cli({"exec", d / "rb.lua", "-p", "hook=" + recv.url("/hook")}, env_of(d));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto got = posts(d / "recv");
  ASSERT_EQ(got.size(), 3u) << r.out;
  std::string start = json::parse(got[0]["body"].get<std::string>())["text"];
  std::string prog = json::parse(got[1]["body"].get<std::string>())["text"];
  std::string fin = json::parse(got[2]["body"].get<std::string>())["text"];
  EXPECT_NE(start.find("[ACTION] Initiating Rollback - checkout answers 500"), std::string::npos) << start;
  EXPECT_NE(start.find("Severity: P1"), std::string::npos) << start;
  EXPECT_NE(start.find("ETA: 20 minutes"), std::string::npos) << start;
  EXPECT_NE(start.find("notice-demo 2.1.0 (run #"), std::string::npos) << start;
  EXPECT_NE(prog.find("[UPDATE] Rollback in Progress - 50% Complete"), std::string::npos) << prog;
  EXPECT_NE(prog.find("2 of 4 steps"), std::string::npos) << prog;
  EXPECT_NE(prog.find("Current Step: progress"), std::string::npos) << prog;
  EXPECT_NE(prog.find("Latest: code at v1.0.0"), std::string::npos) << prog;
  EXPECT_EQ(prog.find("ETA: -"), std::string::npos) << "no ETA from the steps done\n" << prog;
  EXPECT_NE(fin.find("[RESOLVED] Rollback Complete - Service Restored"), std::string::npos) << fin;
  EXPECT_NE(fin.find("Error Rate: 0.4%"), std::string::npos) << fin;
  EXPECT_NE(fin.find("Response Time: 120ms"), std::string::npos) << fin;
  EXPECT_NE(r.out.find("ROLLBACK INITIATED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Method: git"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SizeWise Suite - Brief Service Interruption Resolved"), std::string::npos) << r.out;

  auto replay = run_cli({"replay", "last"}, env_of(d));
  EXPECT_EQ(replay.code, 0) << "the notices rendered differently in the replay\n" << replay.out << replay.err;
  EXPECT_EQ(posts(d / "recv").size(), 3u);

  auto f = run_cli({"exec", d / "rb.lua", "-p", "hook=" + recv.url("/hook"), "-p", "fail=true"}, env_of(d));
  EXPECT_EQ(f.code, 1) << f.out << f.err;
  got = posts(d / "recv");
  ASSERT_EQ(got.size(), 6u) << f.out;
  std::string failed = json::parse(got[5]["body"].get<std::string>())["text"];
  EXPECT_NE(failed.find("[FAILED] Rollback did not complete"), std::string::npos) << failed;
  EXPECT_NE(failed.find("progress: the health check failed"), std::string::npos) << failed;
}
