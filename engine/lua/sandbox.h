// The Lua interpreter a runbook runs in: an allow-list of the standard library built from
// nothing, strict globals, `require` of Lua source from stdlib/ and beside the runbook only, a
// memory ceiling, and a deadline/interrupt hook that pcall cannot swallow.
#pragma once
#include <cstdint>
#include <lua.hpp>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace rb {

class Dispatcher;

// A Lua error raised where no protected call was there to catch it: a defect of the host, not of
// the runbook. The panic handler throws it so that the run is still journaled as failed; the
// interpreter is not used again.
class LuaPanic : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a protected call's error was, for the exit status (see Sandbox::protect):
// Failed: the procedure failed (an effect's error, or the runbook called `error`/`assert`);
// Bug: the runbook is wrong (a VM error such as calling a nil value, an undefined global or
// parameter, a bad argument to a primitive or a library function, step() inside a step).
enum class ErrorKind { None, Failed, Bug };

struct SandboxOptions {
  size_t memory_limit = 256u << 20;
  std::vector<std::string> module_dirs;  // searched in order by require
};

class Sandbox {
 public:
  explicit Sandbox(SandboxOptions opts);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  lua_State* L() const { return L_; }
  static Sandbox* from(lua_State* L);

  // The step deadline. Past it (or on Ctrl-C) the next Lua instruction raises, and keeps raising
  // until the step's protected call returns: pcall inside the runbook cannot swallow it.
  void arm(SteadyTime deadline, std::string what);
  void disarm();
  // Non-empty once the running step has been stopped (deadline, interrupt, memory, divergence).
  const std::string& killed() const { return killed_; }
  // "step 'x' exceeded its timeout of 30s": what passing the armed deadline means.
  const std::string& deadline_what() const { return deadline_what_; }
  void kill(std::string reason);
  bool interrupted() const { return interrupted_; }
  // Raises the stop error if the step is stopped or should be now (deadline, Ctrl-C, memory):
  // for C code that runs long without a Lua instruction, which the count hook never sees.
  void check_stop(lua_State* L);
  size_t memory_limit() const { return opts_.memory_limit; }

  // The value on top of the stack becomes what `require(name)` returns (popped): a module the
  // host provides (`runbook test`'s runbook.test_native). Call inside a protected call.
  void preload(const char* name);

  // Modules loaded by require: name -> sha256 of the source.
  const std::map<std::string, std::string>& modules() const { return modules_; }
  const std::vector<std::string>& module_dirs() const { return opts_.module_dirs; }

  // The engine state the bindings reach through the interpreter.
  Dispatcher* dispatcher = nullptr;
  bool in_step = false;
  // Unknown values (a rehearsal's unpredictable answers, lua/convert.cc) the running step used:
  // how many times, and why the first was unknown. Reset per step attempt; a dry-run step that
  // fails after using one is "checked live only".
  int unknown_touched = 0;
  std::string unknown_reason;
  // Set when the dispatcher stopped the step for looping on unknowns (RehearsalLoop).
  std::string unknown_loop;
  // lua/derive.cc's cache: the secret ranges of the last long subject (kept alive in the
  // registry), for which redactor and how many secrets it held then.
  std::vector<std::pair<size_t, size_t>> derive_ranges;
  const void* derive_owner = nullptr;
  size_t derive_gen = 0;

  // Loads Lua source (text only) as a function whose environment is the sandbox's globals.
  // On failure pushes nothing and returns the message ("file:line: ...").
  bool load_source(const std::string& code, const std::string& chunkname, std::string* error);

  size_t memory_used() const { return used_; }
  // An allocation was refused since the last arm()/disarm(), and what that means.
  bool over_limit() const { return over_limit_; }
  std::string memory_message() const;

  // Runs `fn` inside a protected call, under whatever deadline is armed: a Lua error raised by
  // what it pushes or calls (a metamethod, the memory ceiling) comes back as false with the
  // message, never as a panic. `fn` must not throw C++ exceptions.
  // With `kind`, a message handler classifies the error where it was raised (see ErrorKind): a
  // binding error table is Failed unless tagged `bug = true`; an error raised by the original
  // `error` or `assert` (kept in the registry, whatever the runbook did to the globals) is
  // Failed; anything else is a Bug.
  bool protect(const std::function<void(lua_State*)>& fn, std::string* error,
               ErrorKind* kind = nullptr);
  // The text of the error value at idx, for the journal. Runs its __tostring protected (and
  // under the armed deadline): one that fails, loops or returns a non-string gives a
  // description instead of ending the process.
  std::string error_text(int idx);
  // Errors raised by the function at idx (a C function) are failures, not bugs (see ErrorKind).
  void failure_function(int idx);
  // math.randomseed as the sandbox built it, whatever the runbook did to `math`; protected.
  bool seed(int64_t seed, std::string* error);

 private:
  static void* alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  static void hook(lua_State* L, lua_Debug* ar);
  static int l_require(lua_State* L);
  static int l_pcall(lua_State* L);
  static int l_xpcall(lua_State* L);
  static int l_xpcall_handler(lua_State* L);
  static int l_setmetatable(lua_State* L);
  static int panic(lua_State* L);
  static int l_load(lua_State* L);
  static int l_undefined_global(lua_State* L);
  static int l_classify(lua_State* L);
  void build_globals();

  SandboxOptions opts_;
  lua_State* L_ = nullptr;
  size_t used_ = 0;
  bool over_limit_ = false;
  // The parser and other C code that allocates without running instructions (load() of 40 MB)
  // never reach the count hook: every kAllocCheckEvery growing allocations look at the clock,
  // and one refused allocation past the deadline stops them (the hook then raises).
  uint32_t allocs_ = 0;
  SteadyTime deadline_ = SteadyTime::max();
  std::string deadline_what_;
  std::string killed_;
  bool interrupted_ = false;
  bool panicked_ = false;
  ErrorKind last_kind_ = ErrorKind::None;
  std::map<std::string, std::string> modules_;
  friend int sandbox_modules_hook(lua_State*);
};

}  // namespace rb
