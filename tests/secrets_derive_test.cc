// Values a runbook derives from a secret are secrets too (issue 10): upper, reverse, sub,
// format("%q"), a spaced-out copy, table.concat of its pieces, json.encode, ... are redacted in
// the output (live and --json), `show`, `show --json`, `report` and the journal's files, while
// the runbook itself gets the real values. And env.get of a secret-named variable (or with
// secret = true) is a secret.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/secrets.h"
#include "support/support.h"

using namespace rb::test;

namespace {

// A secret with a quote and a backslash, so that %q and JSON escaping change its bytes.
const std::string kSecret = "k3y\"Secr\\et-Val-9072";

// Each derivation is logged, printed, passed to a command's environment (its output journaled)
// and written to forms/NN (a file the user asked for: the real value belongs there), which is how
// the test learns the exact derived bytes.
const char* kDerive = R"~(
runbook { name = "derive", version = "1.0.0",
  params = { token = { type = "string", secret = true, required = true },
             out = { type = "path", required = true } } }

step("derive", function(p)
  local t = p.token
  local chars = {}
  for c in t:gmatch(".") do chars[#chars + 1] = c end
  local forms = {
    t:upper(),
    t:lower(),
    t:reverse(),
    t:sub(1, 12),
    t:sub(5),
    t:sub(-8),
    string.rep(t, 2, ","),
    string.format("%q", t),
    string.format("%.10s", t),
    string.format("%-30s|", t),
    string.format("[%s]", t:upper()),
    (t:gsub(".", "%0 ")),
    (t:gsub("%w", "%0%0")),
    (t:gsub("[aeiou]", "*")),
    table.concat(chars, " "),
    table.concat({ t:sub(1, 3), t:sub(4, 6), t:sub(7, 9), t:sub(10) }, "-"),
    t:match("^(.-)%-Val"),
    select(3, t:find("(Val%-%d+)")),
    json.encode({ token = t, n = 1 }),
    json.encode({ t:upper() }),
    tostring(t),
    tostring(setmetatable({}, { __tostring = function() return t:reverse():upper() end })),
    ("Bearer " .. t):upper(),
    ("Bearer " .. t):lower():sub(8),
    t:upper():reverse(),
    string.format("%s:%s", "user", t):rep(2, "/"),
    (t:reverse():gsub("%d", "#")),
    (t:gsub("", ".")),
    string.format("%q", "Bearer " .. t),
    table.concat({ "a", t:upper(), "b" }),
  }
  for i, f in ipairs(forms) do
    log.info("form " .. i .. ": " .. f)
    print("printed", f)
    exec{ "printenv", "V", env = { V = f }, readonly = true }
    fs.write{ path = string.format("%s/%02d", p.out, i), content = f }
  end
  error("giving up with " .. t:upper():reverse() .. " and " .. (t:gsub(".", "%0 ")))
end)
)~";

std::vector<std::string> forms_in(const std::string& dir) {
  std::vector<std::string> out;
  for (int i = 1; i <= 99; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "/%02d", i);
    if (!std::filesystem::exists(dir + name)) break;
    out.push_back(read_file(dir + name));
  }
  return out;
}

}  // namespace

TEST(SecretsDerive, DerivedValuesAreRedactedEverywhere) {
  TempDir d;
  write_file(d / "derive.lua", kDerive);
  std::string j = d / "journal/j.db";
  std::vector<CliResult> outputs;
  for (bool as_json : {false, true}) {
    std::filesystem::remove_all(d / "forms");
    std::filesystem::create_directories(d / "forms");
    std::vector<std::string> args = {"exec", d / "derive.lua", "-p", "token=" + kSecret, "-p",
                                     "out=" + d / "forms", "--journal", j};
    if (as_json) args.push_back("--json");
    auto r = run_cli(args);
    EXPECT_EQ(r.code, 1) << r.out << r.err;  // the runbook's error() at the end
    EXPECT_NE(r.out.find("giving up with"), std::string::npos) << r.out;
    outputs.push_back(r);
  }
  auto forms = forms_in(d / "forms");
  ASSERT_EQ(forms.size(), 30u) << "the runbook wrote every derived form";
  // The runbook got the real values.
  EXPECT_EQ(forms[0], "K3Y\"SECR\\ET-VAL-9072");
  EXPECT_EQ(forms[3], kSecret.substr(0, 12));
  EXPECT_EQ(forms[20], kSecret);
  outputs.push_back(run_cli({"show", "last", "--journal", j}));
  outputs.push_back(run_cli({"show", "last", "--json", "--journal", j}));
  outputs.push_back(run_cli({"report", "last", "--journal", j}));
  outputs.push_back(run_cli({"report", "last", "--format", "json", "--journal", j}));
  for (size_t k = 2; k < outputs.size(); ++k) {
    EXPECT_EQ(outputs[k].code, 0) << outputs[k].out << outputs[k].err;
    EXPECT_NE(outputs[k].out.find("***"), std::string::npos) << outputs[k].out;
  }
  forms.push_back(kSecret);
  for (const auto& f : forms) {
    ASSERT_GE(f.size(), 4u);
    for (const auto& o : outputs) {
      EXPECT_EQ(o.out.find(f), std::string::npos) << "derived form [" << f << "] in:\n" << o.out;
      EXPECT_EQ(o.err.find(f), std::string::npos) << "derived form [" << f << "] in:\n" << o.err;
    }
    // The journal's files as raw bytes: journal.db, its -wal and -shm, whatever exists.
    EXPECT_EQ(files_containing(d / "journal", f), std::vector<std::string>{}) << "[" << f << "]";
  }
  // What is not secret still shows.
  EXPECT_NE(outputs[0].out.find("form 1: ***"), std::string::npos) << outputs[0].out;
  EXPECT_NE(outputs[0].out.find("printed"), std::string::npos) << outputs[0].out;
}

// A derived secret does not make everything around it secret: the rest of a line stays readable,
// and a part of a text that lies outside the secret is not registered.
TEST(SecretsDerive, OnlyTheSecretPartIsRedacted) {
  TempDir d;
  write_file(d / "rb.lua", R"~(
runbook { name = "part", version = "1.0.0",
  params = { token = { type = "string", secret = true, required = true } } }
step("s", function(p)
  local header = "Bearer " .. p.token
  log.info("prefix [" .. header:sub(1, 7) .. "]")
  log.info("upper [" .. header:upper() .. "]")
  log.info("url " .. string.format("https://example.test/%s?token=%s", "items", p.token))
end)
)~");
  auto r = run_cli({"exec", d / "rb.lua", "-p", "token=abcdef-123456", "--journal", d / "j.db"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("prefix [Bearer ]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("upper [BEARER ***]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("url https://example.test/items?token=***"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ABCDEF-123456"), std::string::npos) << r.out;
}

TEST(SecretsDerive, SecretNames) {
  for (const char* n : {"API_TOKEN", "GITHUB_PAT", "PAT_X", "gh_pat", "DB_PASSWORD", "DB_PASSWD",
                        "MY_PASS", "AWS_SECRET_ACCESS_KEY", "SSH_KEY", "CREDENTIALS", "AUTH_HEADER",
                        "x-api-key"})
    EXPECT_TRUE(rb::secret_name(n)) << n;
  for (const char* n : {"PATH", "PATHEXT", "XPATH", "HOME", "USER", "SPATIAL", "PATTERN", "LANG"})
    EXPECT_FALSE(rb::secret_name(n)) << n;
}

// env.get of API_TOKEN, GITHUB_PAT, or any variable with secret = true returns a secret: the
// runbook gets it, the output, --json, show and the journal get "***", also where it is passed on
// to a command's environment. PATH is not a secret.
TEST(SecretsDerive, EnvironmentSecrets) {
  TempDir d;
  write_file(d / "env.lua", R"~(
runbook { name = "envs", version = "1.0.0", params = { out = { type = "path", required = true } } }
step("read", function(p)
  local a = env.get("API_TOKEN")
  local g = env.get("GITHUB_PAT")
  local s = env.get{ name = "DEPLOY_VALUE", secret = true }
  local plain = env.get("PLAIN_VALUE")
  local path = env.get("PATH")
  log.info("api " .. a .. " pat " .. g .. " deploy " .. s .. " plain " .. plain)
  log.info("path is " .. path)
  log.info("derived " .. a:upper() .. " " .. g:reverse())
  local r = exec{ "printenv", "X", env = { X = a, Y = g }, readonly = true }
  log.info("child saw " .. r.stdout)
  fs.write{ path = p.out, content = a .. "\n" .. g .. "\n" .. s .. "\n" }
end)
)~");
  std::map<std::string, std::string> env = {{"API_TOKEN", "apitok-77aa88bb"},
                                            {"GITHUB_PAT", "ghp_pat0123456789"},
                                            {"DEPLOY_VALUE", "deployval-4242"},
                                            {"PLAIN_VALUE", "plainval-1357"}};
  std::string j = d / "journal/j.db";
  std::vector<CliResult> outs;
  for (bool as_json : {false, true}) {
    std::vector<std::string> args = {"exec", d / "env.lua", "-p", "out=" + d / "got.txt", "--journal", j};
    if (as_json) args.push_back("--json");
    auto r = run_cli(args, env);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("plainval-1357"), std::string::npos) << r.out;
    const char* path = std::getenv("PATH");
    ASSERT_NE(path, nullptr);
    EXPECT_NE(r.out.find(std::string("path is ") + path), std::string::npos) << r.out;
    outs.push_back(r);
  }
  EXPECT_EQ(read_file(d / "got.txt"), "apitok-77aa88bb\nghp_pat0123456789\ndeployval-4242\n");
  outs.push_back(run_cli({"show", "last", "--journal", j}));
  outs.push_back(run_cli({"show", "last", "--json", "--journal", j}));
  outs.push_back(run_cli({"report", "last", "--journal", j}));
  EXPECT_NE(outs[0].out.find("api *** pat *** deploy *** plain plainval-1357"), std::string::npos) << outs[0].out;
  EXPECT_NE(outs[0].out.find("child saw ***"), std::string::npos) << outs[0].out;
  for (const char* v : {"apitok-77aa88bb", "ghp_pat0123456789", "deployval-4242", "APITOK-77AA88BB",
                        "9876543210tap_phg"}) {
    for (const auto& o : outs) {
      EXPECT_EQ(o.out.find(v), std::string::npos) << v << " in:\n" << o.out;
      EXPECT_EQ(o.err.find(v), std::string::npos) << v << " in:\n" << o.err;
    }
    // (artifacts/ holds the backup of got.txt, the user's own file, that the second run replaced)
    EXPECT_EQ(files_containing(d / "journal", v, "artifacts"), std::vector<std::string>{}) << v;
  }
}
