// git.fetch and git.push. A forced push is always a push with a lease: the remote ref must still
// be where our remote-tracking ref says we last saw it (or at `expect`), checked on the same
// connection the push then uses, so a colleague's push is never silently thrown away. Everything
// that talks to a remote runs through run_transfer (git_child.cc): in a child process, so that
// `timeout` bounds the whole operation whatever the server does.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <optional>

#include "core/error.h"
#include "core/strings.h"
#include "effects/effects.h"
#include "effects/git_repo.h"
#include "effects/pkg_util.h"
#include "effects/util.h"

namespace rb::git {
namespace {

// What libgit2's callbacks report back; they must not throw through C, so an interruption is
// stored here and rethrown once libgit2 has returned.
struct Session {
  explicit Session(EffectContext* c) : ctx(c) {}
  EffectContext* ctx;
  std::exception_ptr error;
  json updated = json::array();
  std::vector<std::string> rejected;
  int credential_tries = 0;

  int poll() {
    try {
      ctx->check_interrupt();
      return 0;
    } catch (...) {
      error = std::current_exception();
      return GIT_EUSER;
    }
  }
  void rethrow() {
    if (error) std::rethrow_exception(error);
  }
};

git_remote_callbacks callbacks(Session& s) {
  git_remote_callbacks cb = GIT_REMOTE_CALLBACKS_INIT;
  cb.payload = &s;
  cb.sideband_progress = [](const char*, int, void* p) -> int {
    return static_cast<Session*>(p)->poll();
  };
  cb.transfer_progress = [](const git_indexer_progress*, void* p) -> int {
    return static_cast<Session*>(p)->poll();
  };
  cb.push_transfer_progress = [](unsigned int, unsigned int, size_t, void* p) -> int {
    return static_cast<Session*>(p)->poll();
  };
  cb.update_tips = [](const char* ref, const git_oid* a, const git_oid* b, void* p) -> int {
    json j{{"ref", ref}};
    j["from"] = git_oid_is_zero(a) ? json(nullptr) : json(hex(*a));
    j["to"] = git_oid_is_zero(b) ? json(nullptr) : json(hex(*b));
    static_cast<Session*>(p)->updated.push_back(j);
    return 0;
  };
  cb.push_update_reference = [](const char* ref, const char* status, void* p) -> int {
    if (status) static_cast<Session*>(p)->rejected.push_back(std::string(ref) + ": " + status);
    return 0;
  };
  // ssh through the agent, once; anything else falls back to libgit2's defaults (and fails
  // clearly rather than prompting).
  cb.credentials = [](git_credential** out, const char*, const char* user, unsigned int allowed,
                      void* p) -> int {
    auto* s = static_cast<Session*>(p);
    if (s->credential_tries++ > 0) return GIT_PASSTHROUGH;
    if (allowed & GIT_CREDENTIAL_SSH_KEY)
      return git_credential_ssh_key_from_agent(out, user ? user : "git");
    return GIT_PASSTHROUGH;
  };
  return cb;
}

// A host that does not accept a connection in this long is not there: said clearly, rather than
// as a transfer that "did not finish" minutes later.
constexpr Millis kConnectLimit{30'000};

// libgit2 1.5 has no connect timeout: a dead host would hang for the kernel's TCP timeout. So a
// network remote's host is first dialled here (in the transfer's child), bounded by the timeout.
void preflight(EffectContext& ctx, const std::string& url, Millis timeout) {
  std::string host, port;
  auto scheme = url.find("://");
  if (scheme != std::string::npos) {
    std::string s = url.substr(0, scheme);
    if (s == "file") return;
    std::string rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    if (!rest.empty() && rest[0] == '[') {
      auto close = rest.find(']');
      host = rest.substr(1, close - 1);
      if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
    } else if (auto colon = rest.find(':'); colon != std::string::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    } else {
      host = rest;
    }
    if (port.empty()) port = s == "https" ? "443" : s == "http" ? "80" : s == "git" ? "9418" : "22";
  } else {
    // scp-like "user@host:path"; a local path has no colon before its first slash.
    auto colon = url.find(':');
    auto slash = url.find('/');
    if (colon == std::string::npos || (slash != std::string::npos && slash < colon)) return;
    host = url.substr(0, colon);
    if (auto at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
    port = "22";
  }
  if (host.empty()) return;
  Millis bound = std::min(ctx.bound(timeout), kConnectLimit);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    throw EffectError("cannot resolve " + host + ": " + gai_strerror(rc));
  std::string last = "no address";
  bool ok = false;
  for (addrinfo* ai = res; ai && !ok; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, static_cast<int>(bound.count())) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0)
          ok = true;
        else
          last = std::strerror(err);
      } else {
        last = "no answer within " + format_duration(bound);
      }
    } else {
      last = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (!ok) throw EffectError("cannot reach " + host + ":" + port + " (" + last + ")");
}

Remote lookup_remote(git_repository* repo, const std::string& name) {
  Remote r;
  int rc = git_remote_lookup(r.out(), repo, name.c_str());
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
    // A URL or path works too, as with `git fetch <url>`.
    if (name.find('/') != std::string::npos || name.find(':') != std::string::npos) {
      check(git_remote_create_anonymous(r.out(), repo, name.c_str()), "cannot use remote " + name);
      return r;
    }
    throw EffectError("no remote '" + name + "' in " + where(repo));
  }
  check(rc, "cannot read remote '" + name + "'");
  return r;
}

std::string url_of(git_remote* r) {
  const char* u = git_remote_url(r);
  return u ? u : "";
}

// "origin (https://host/repo.git)", for run_transfer's messages and progress (a password in the
// URL shown as ***); a missing repository or remote fails here as it would in the child.
// The password (or token) of a remote URL with credentials (https://user:pw@host/repo): a secret
// from here on, redacted everywhere and refused in any child's argv.
void register_url_secret(EffectContext& ctx, const std::string& url) {
  for (const auto& secret : pkg::url_secrets({url})) ctx.add_secret(secret);
}

std::string remote_label(EffectContext& ctx, const Args& a) {
  Repo repo = open(a);
  Remote rem = lookup_remote(repo.get(), a.str("remote"));
  std::string url = url_of(rem.get());
  register_url_secret(ctx, a.str("remote"));
  register_url_secret(ctx, url);
  bool anonymous = url == a.str("remote");  // the remote was given as a URL
  auto scheme = url.find("://");
  auto at = url.find('@');
  if (scheme != std::string::npos && at != std::string::npos && at < url.find('/', scheme + 3)) {
    auto colon = url.find(':', scheme + 3);
    if (colon < at) url = url.substr(0, colon + 1) + "***" + url.substr(at);
  }
  return anonymous ? url : a.str("remote") + " (" + url + ")";
}

json transfer(EffectContext& ctx, const Args& a, const std::function<json()>& body) {
  return run_transfer(ctx, remote_label(ctx, a), a.duration("timeout"), body);
}

const char* kTimeoutDoc =
    "for the whole operation (connect, transfer, ref updates), bounded by the step's deadline";

void connect(EffectContext& ctx, git_remote* r, git_direction dir, const git_remote_callbacks& cb,
             Session& s, Millis timeout) {
  register_url_secret(ctx, url_of(r));
  preflight(ctx, url_of(r), timeout);
  int rc = git_remote_connect(r, dir, &cb, nullptr, nullptr);
  s.rethrow();
  check(rc, "cannot connect to " + url_of(r));
}

std::optional<git_oid> remote_ref(git_remote* r, const std::string& name) {
  const git_remote_head** heads = nullptr;
  size_t n = 0;
  check(git_remote_ls(&heads, &n, r), "cannot list the remote's refs");
  for (size_t i = 0; i < n; ++i)
    if (name == heads[i]->name) return heads[i]->oid;
  return std::nullopt;
}

// refs/heads/main on the remote → refs/remotes/origin/main here, by the remote's fetch refspecs.
std::string tracking_ref(git_remote* r, const std::string& remote_name) {
  for (size_t i = 0; i < git_remote_refspec_count(r); ++i) {
    const git_refspec* spec = git_remote_get_refspec(r, i);
    if (git_refspec_direction(spec) != GIT_DIRECTION_FETCH ||
        !git_refspec_src_matches(spec, remote_name.c_str()))
      continue;
    git_buf buf = GIT_BUF_INIT;
    std::string out;
    if (git_refspec_transform(&buf, spec, remote_name.c_str()) == 0) out.assign(buf.ptr, buf.size);
    git_buf_dispose(&buf);
    if (!out.empty()) return out;
  }
  return "";
}

std::optional<git_oid> local_ref(git_repository* repo, const std::string& name) {
  git_oid id;
  if (name.empty() || git_reference_name_to_id(&id, repo, name.c_str()) < 0) return std::nullopt;
  return id;
}

std::string at_text(git_repository* repo, const std::optional<git_oid>& id) {
  return id ? label(repo, *id) : "(absent)";
}

// ---- fetch ----------------------------------------------------------------------------------

json preview_fetch(EffectContext& ctx, const Args& a) {
  Repo repo = open(a);
  Remote rem = lookup_remote(repo.get(), a.str("remote"));
  Session s(&ctx);
  auto cb = callbacks(s);
  connect(ctx, rem.get(), GIT_DIRECTION_FETCH, cb, s, a.duration("timeout"));
  const git_remote_head** heads = nullptr;
  size_t n = 0;
  check(git_remote_ls(&heads, &n, rem.get()), "cannot list the remote's refs");
  json updated = json::array();
  std::vector<std::string> lines;
  for (size_t i = 0; i < n; ++i) {
    std::string local = tracking_ref(rem.get(), heads[i]->name);
    if (local.empty()) continue;
    auto have = local_ref(repo.get(), local);
    if (have && git_oid_equal(&*have, &heads[i]->oid)) continue;
    json u{{"ref", local}, {"to", hex(heads[i]->oid)}};
    u["from"] = have ? json(hex(*have)) : json(nullptr);
    updated.push_back(u);
    lines.push_back(local + " " + (have ? short_hex(*have) : std::string("(new)")) + " → " +
                    short_hex(heads[i]->oid));
  }
  git_remote_disconnect(rem.get());
  std::string text = lines.empty() ? "up to date with " + a.str("remote")
                                   : "updates " + std::to_string(lines.size()) + " ref" +
                                         (lines.size() == 1 ? "" : "s") + " from " +
                                         a.str("remote") + ": " + list_text(lines);
  return json{{"text", text}, {"url", url_of(rem.get())}, {"updated", updated}};
}

// git_remote_fetch, step by step (as libgit2 1.5 does it), so that the ref updates are marked as
// the local phase a stop lets finish.
json fetch(EffectContext& ctx, const Args& a) {
  Repo repo = open(a);
  Remote rem = lookup_remote(repo.get(), a.str("remote"));
  Session s(&ctx);
  git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
  fo.callbacks = callbacks(s);
  preflight(ctx, url_of(rem.get()), a.duration("timeout"));
  std::string failed = "cannot fetch from " + a.str("remote") + " (" + url_of(rem.get()) + ")";
  int rc = git_remote_download(rem.get(), nullptr, &fo);
  git_remote_disconnect(rem.get());
  s.rethrow();
  check(rc, failed);
  transfer_local_phase();
  rc = git_remote_update_tips(rem.get(), &fo.callbacks, fo.update_fetchhead, fo.download_tags,
                              ("runbook: fetch " + a.str("remote")).c_str());
  s.rethrow();
  check(rc, failed);
  if (git_remote_prune_refs(rem.get()))
    check(git_remote_prune(rem.get(), &fo.callbacks), "cannot prune refs of " + a.str("remote"));
  return json{{"remote", a.str("remote")}, {"url", url_of(rem.get())}, {"updated", s.updated}};
}

void add_fetch(Registry& r) {
  Effect e;
  e.name = "git.fetch";
  e.summary =
      "Fetch from a remote, updating its remote-tracking refs (the work tree is not touched)";
  e.kind = Kind::Change;
  e.args = {repo_arg(), opt("remote", ArgType::String, "a remote's name (or a URL)", "origin"),
            opt("timeout", ArgType::Duration, kTimeoutDoc, "5m")};
  e.returns = "{ remote, url, updated = { { ref, from, to } } }";
  e.results = {{"remote", "string", "the remote"}, {"url", "string", "its URL (redacted)"}, {"updated", "list", "{ ref, from, to } of each ref updated"}};
  e.secrets_of = [](const Args& a) { return pkg::url_secrets({a.str_or("remote", "")}); };
  e.describe = [](const Args& a) { return "fetch " + a.str("remote") + " into " + a.str("repo"); };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    return transfer(ctx, a, [&] { return preview_fetch(ctx, a); });
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    return transfer(ctx, a, [&] { return fetch(ctx, a); });
  };
  e.planned = [](const Args& a, const json& pv) {
    return json{{"remote", a.str("remote")},
                {"url", pv_or(pv, "url", "")},
                {"updated", pv_or(pv, "updated", json::array())}};
  };
  r.add(std::move(e));
}

// ---- push -----------------------------------------------------------------------------------

struct PushPlan {
  Remote remote;
  std::string src, dst;  // what we push (a ref name or a revision) and the remote ref it goes to
  git_oid local{};
  std::optional<git_oid> remote_at, lease;
  bool force = false;
  bool up_to_date = false;
  std::string refusal;  // why it would be refused; empty when it can go
  std::string spec() const { return (force ? "+" : "") + src + ":" + dst; }
};

// Parses the refspec, connects for pushing and decides: all before anything is sent.
PushPlan plan_push(EffectContext& ctx, git_repository* repo, const Args& a, Session& s,
                   const git_remote_callbacks& cb) {
  PushPlan p;
  p.remote = lookup_remote(repo, a.str("remote"));
  std::string spec = a.str_or("refspec", "");
  p.force = a.boolean("force");
  if (!spec.empty() && spec[0] == '+') {
    p.force = true;
    spec.erase(0, 1);
  }
  if (spec.empty()) {
    Head h = head(repo);
    if (h.detached || h.unborn || h.ref.empty())
      throw EffectError("HEAD is not on a branch: give refspec = \"<src>:refs/heads/<branch>\"");
    spec = h.ref;
  }
  auto colon = spec.find(':');
  p.src = colon == std::string::npos ? spec : spec.substr(0, colon);
  p.dst = colon == std::string::npos ? spec : spec.substr(colon + 1);
  if (p.src.empty())
    throw EffectError("deleting remote refs is not supported (refspec '" + spec + "')");
  if (p.dst.empty()) throw EffectError("refspec '" + spec + "' names no destination");
  Reference ref;
  std::string src_full;
  if (git_reference_dwim(ref.out(), repo, p.src.c_str()) == 0) {
    Reference resolved;
    check(git_reference_resolve(resolved.out(), ref.get()), "cannot resolve " + p.src);
    src_full = git_reference_name(resolved.get());
    p.local = *git_reference_target(resolved.get());
    p.src = src_full;
  } else {
    Object o;
    if (git_revparse_single(o.out(), repo, p.src.c_str()) < 0)
      throw EffectError("unknown ref '" + p.src + "' in " + where(repo));
    p.local = *git_object_id(o.get());
    p.src = hex(p.local);
  }
  if (p.dst.rfind("refs/", 0) != 0)
    p.dst = (src_full.rfind("refs/tags/", 0) == 0 ? "refs/tags/" : "refs/heads/") + p.dst;

  connect(ctx, p.remote.get(), GIT_DIRECTION_PUSH, cb, s, a.duration("timeout"));
  p.remote_at = remote_ref(p.remote.get(), p.dst);
  std::string where_remote = p.dst + " on " + a.str("remote");
  if (p.remote_at && git_oid_equal(&*p.remote_at, &p.local)) {
    p.up_to_date = true;
    return p;
  }
  if (p.force) {
    if (a.has("expect")) {
      git_oid e;
      if (git_oid_fromstr(&e, a.str("expect").c_str()) < 0)
        throw EffectError("expect must be a full sha, got '" + a.str("expect") + "'");
      p.lease = e;
    } else {
      p.lease = local_ref(repo, tracking_ref(p.remote.get(), p.dst));
    }
    bool same = p.lease.has_value() == p.remote_at.has_value() &&
                (!p.lease || git_oid_equal(&*p.lease, &*p.remote_at));
    if (!same)
      p.refusal = where_remote + " is at " + at_text(repo, p.remote_at) + ", not at " +
                  at_text(repo, p.lease) +
                  (a.has("expect") ? " as expected" : " where we last fetched it") +
                  ": someone pushed since; fetch and look before forcing";
    return p;
  }
  if (p.remote_at) {
    git_odb* odb = nullptr;
    bool have = git_repository_odb(&odb, repo) == 0 && git_odb_exists(odb, &*p.remote_at);
    git_odb_free(odb);
    if (!have)
      p.refusal = where_remote + " has commits we do not have (" + short_hex(*p.remote_at) +
                  "): fetch first";
    else if (git_graph_descendant_of(repo, &p.local, &*p.remote_at) != 1)
      p.refusal = "not a fast-forward: " + where_remote + " is at " + label(repo, *p.remote_at) +
                  ", which " + short_hex(p.local) +
                  " does not contain (force = true replaces it, with a lease)";
  }
  return p;
}

json push_result(git_repository* repo, const Args& a, const PushPlan& p) {
  json j{{"remote", a.str("remote")}, {"url", url_of(p.remote.get())},
         {"refspec", p.spec()},       {"ref", p.dst},
         {"to", hex(p.local)},        {"forced", p.force},
         {"up_to_date", p.up_to_date}};
  j["from"] = p.remote_at ? json(hex(*p.remote_at)) : json(nullptr);
  j["lease"] = p.lease ? json(hex(*p.lease)) : json(nullptr);
  return j;
}

// push{ tags = true }: every local tag the remote lacks. A tag the remote has at another commit
// refuses the whole push: tags are never moved on a remote by a runbook.
struct TagsPlan {
  Remote remote;
  std::vector<std::string> push, present, differ;
};

TagsPlan plan_tags(EffectContext& ctx, git_repository* repo, const Args& a, Session& s,
                   const git_remote_callbacks& cb) {
  TagsPlan p;
  p.remote = lookup_remote(repo, a.str("remote"));
  git_strarray names{nullptr, 0};
  check(git_tag_list(&names, repo), "cannot list tags");
  std::vector<std::string> tags(names.strings, names.strings + names.count);
  git_strarray_dispose(&names);
  connect(ctx, p.remote.get(), GIT_DIRECTION_PUSH, cb, s, a.duration("timeout"));
  for (const auto& t : tags) {
    auto local = local_ref(repo, "refs/tags/" + t);
    auto remote = remote_ref(p.remote.get(), "refs/tags/" + t);
    if (!remote)
      p.push.push_back(t);
    else if (local && git_oid_equal(&*local, &*remote))
      p.present.push_back(t);
    else
      p.differ.push_back(t);
  }
  return p;
}

json tags_result(const Args& a, const TagsPlan& p) {
  return json{{"remote", a.str("remote")},    {"url", url_of(p.remote.get())},
              {"refspec", "refs/tags/*"},     {"pushed", strings_json(p.push)},
              {"up_to_date", p.push.empty()}, {"forced", false}};
}

std::string tags_refusal(const TagsPlan& p) {
  return p.differ.empty() ? "" : "tags differ on the remote (never moved): " + list_text(p.differ);
}

json preview_tags(EffectContext& ctx, git_repository* repo, const Args& a) {
  Session s(&ctx);
  auto cb = callbacks(s);
  TagsPlan p = plan_tags(ctx, repo, a, s, cb);
  git_remote_disconnect(p.remote.get());
  json j = tags_result(a, p);
  std::string text = p.push.empty() ? "every tag is on " + a.str("remote") + " already"
                                    : "pushes " + plural(p.push.size(), "tag", "tags") + " to " +
                                          a.str("remote") + ": " + list_text(p.push);
  if (!p.differ.empty()) {
    // The live push is refused with these words, unless planned changes make the tags first.
    if (!predicted_repo(ctx, repo)) throw WouldFail(tags_refusal(p), j);
    text += "; would be refused: " + tags_refusal(p);
  }
  j["text"] = text;
  j["refused"] = !p.differ.empty();
  return j;
}

// Pushes over the connection the plan opened (so what was checked is what is pushed). What the
// remote refuses is left in s.rejected for the caller's error.
void upload(git_remote* remote, std::vector<std::string> specs, const git_remote_callbacks& cb,
            Session& s, const Args& a) {
  std::vector<char*> ptrs;
  for (auto& sp : specs) ptrs.push_back(sp.data());
  git_strarray arr{ptrs.data(), ptrs.size()};
  git_push_options po = GIT_PUSH_OPTIONS_INIT;
  po.callbacks = cb;
  int rc = git_remote_upload(remote, &arr, &po);
  s.rethrow();
  check(rc, "push to " + a.str("remote") + " failed");
}

json push_tags(EffectContext& ctx, git_repository* repo, const Args& a) {
  Session s(&ctx);
  auto cb = callbacks(s);
  TagsPlan p = plan_tags(ctx, repo, a, s, cb);
  if (!p.differ.empty()) {
    git_remote_disconnect(p.remote.get());
    throw EffectError(tags_refusal(p), tags_result(a, p));
  }
  if (!p.push.empty()) {
    std::vector<std::string> specs;
    for (const auto& t : p.push) specs.push_back("refs/tags/" + t + ":refs/tags/" + t);
    upload(p.remote.get(), specs, cb, s, a);
    if (!s.rejected.empty())
      throw EffectError(a.str("remote") + " refused " + join(s.rejected, "; "));
  }
  git_remote_disconnect(p.remote.get());
  return tags_result(a, p);
}

json preview_push(EffectContext& ctx, const Args& a) {
  Repo repo = sure([&] { return open(a); });
  if (a.boolean("tags")) return preview_tags(ctx, repo.get(), a);
  Session s(&ctx);
  auto cb = callbacks(s);
  PushPlan p = plan_push(ctx, repo.get(), a, s, cb);
  git_remote_disconnect(p.remote.get());
  json j = push_result(repo.get(), a, p);
  std::string text = p.dst + " on " + a.str("remote") + ": " + at_text(repo.get(), p.remote_at) +
                     " → " + label(repo.get(), p.local);
  if (p.up_to_date)
    text = p.dst + " on " + a.str("remote") + " is already at " + label(repo.get(), p.local);
  else if (!p.refusal.empty() && !predicted_repo(ctx, repo.get()))
    throw WouldFail(p.refusal, j);  // as the live push is, unless planned changes move the ref
  else if (!p.refusal.empty())
    text += "; would be refused: " + p.refusal;
  else if (p.force)
    text += " (forced; the lease holds: the remote is where we last saw it)";
  j["text"] = text;
  j["refused"] = !p.refusal.empty();
  return j;
}

json push(EffectContext& ctx, const Args& a) {
  Repo repo = open(a);
  if (a.boolean("tags")) return push_tags(ctx, repo.get(), a);
  Session s(&ctx);
  auto cb = callbacks(s);
  PushPlan p = plan_push(ctx, repo.get(), a, s, cb);
  if (!p.refusal.empty()) {
    git_remote_disconnect(p.remote.get());
    throw EffectError(p.refusal, push_result(repo.get(), a, p));
  }
  if (!p.up_to_date) {
    // Same connection as the lease check: the push's old value is the one we just compared.
    upload(p.remote.get(), {p.spec()}, cb, s, a);
    if (!s.rejected.empty())
      throw EffectError(a.str("remote") + " refused " + join(s.rejected, "; "),
                        push_result(repo.get(), a, p));
    transfer_local_phase();
    check(git_remote_update_tips(p.remote.get(), &cb, 0, GIT_REMOTE_DOWNLOAD_TAGS_UNSPECIFIED,
                                 nullptr),
          "pushed, but cannot update the remote-tracking ref");
  }
  git_remote_disconnect(p.remote.get());
  return push_result(repo.get(), a, p);
}

json verify_push(EffectContext& ctx, const Args& a) {
  Repo repo = open(a);
  if (a.boolean("tags")) {
    Session s(&ctx);
    auto cb = callbacks(s);
    TagsPlan p = plan_tags(ctx, repo.get(), a, s, cb);
    git_remote_disconnect(p.remote.get());
    return p.push.empty();
  }
  Session s(&ctx);
  auto cb = callbacks(s);
  PushPlan p = plan_push(ctx, repo.get(), a, s, cb);
  git_remote_disconnect(p.remote.get());
  return p.up_to_date;
}

void add_push(Registry& r) {
  Effect e;
  e.name = "git.push";
  e.summary =
      "Push a ref to a remote; force = true is always force-with-lease (refused if the remote "
      "moved "
      "since we last fetched)";
  e.kind = Kind::Change;
  e.args = {
      repo_arg(),
      opt("remote", ArgType::String, "a remote's name (or a URL)", "origin"),
      opt("refspec", ArgType::String,
          "\"main\", \"v1.0.0\" or \"<src>:<dst>\"; default: the current branch"),
      opt("force", ArgType::Bool, "replace a ref that is not an ancestor (with a lease)", false),
      opt("expect", ArgType::String,
          "the lease: the sha the remote ref must be at (default: as last fetched)"),
      opt("tags", ArgType::Bool,
          "push every tag the remote lacks instead (git push --tags); a tag the "
          "remote has elsewhere refuses the push",
          false),
      opt("timeout", ArgType::Duration, kTimeoutDoc, "5m")};
  e.returns =
      "{ remote, url, refspec, ref, from = remote's previous sha or nil, to, forced, lease, "
      "up_to_date }; "
      "with tags = true: { remote, url, refspec, pushed = {tag names}, up_to_date, forced }";
  e.results = {{"remote", "string", "the remote"}, {"url", "string", "its URL (redacted)"}, {"refspec", "string", "the refspec pushed"}, {"ref", "string", "the remote ref"}, {"from", "string", "the remote's previous sha, or nil"}, {"to", "string", "sha pushed"}, {"forced", "boolean", "whether forced"}, {"lease", "string", "the sha the lease expected"}, {"up_to_date", "boolean", "nothing to push"}, {"pushed", "list", "tag names (tags = true)"}};
  e.secrets_of = [](const Args& a) { return pkg::url_secrets({a.str_or("remote", "")}); };
  e.describe = [](const Args& a) {
    if (a.boolean("tags")) return "push the tags of " + a.str("repo") + " to " + a.str("remote");
    return "push " + a.str_or("refspec", "the current branch") + " to " + a.str("remote") +
           " from " + a.str("repo") + (a.boolean("force") ? " (force, with lease)" : "");
  };
  e.preview = [](EffectContext& ctx, const Args& a) -> json {
    return transfer(ctx, a, [&] { return preview_push(ctx, a); });
  };
  e.apply = [](EffectContext& ctx, const Args& a) -> json {
    if (a.boolean("tags") && a.has("refspec"))
      throw EffectError("give refspec or tags = true, not both");
    return transfer(ctx, a, [&] { return push(ctx, a); });
  };
  e.planned = [](const Args& a, const json& pv) {
    if (a.boolean("tags"))
      return json{{"remote", a.str("remote")},
                  {"url", pv_or(pv, "url", "")},
                  {"refspec", "refs/tags/*"},
                  {"pushed", pv_or(pv, "pushed", json::array())},
                  {"up_to_date", pv_or(pv, "up_to_date", false)},
                  {"forced", false}};
    return json{{"remote", a.str("remote")},
                {"url", pv_or(pv, "url", "")},
                {"refspec", pv_or(pv, "refspec", a.str_or("refspec", ""))},
                {"ref", pv_or(pv, "ref", nullptr)},
                {"from", pv_or(pv, "from", nullptr)},
                {"to", pv_or(pv, "to", kZeroSha)},
                {"forced", pv_or(pv, "forced", a.boolean("force"))},
                {"lease", pv_or(pv, "lease", nullptr)},
                {"up_to_date", pv_or(pv, "up_to_date", false)}};
  };
  e.verify = [](EffectContext& ctx, const Args& a) -> json {
    return transfer(ctx, a, [&] { return verify_push(ctx, a); });
  };
  r.add(std::move(e));
}

}  // namespace

void register_remote_effects(Registry& r) {
  add_fetch(r);
  add_push(r);
}

}  // namespace rb::git
