// The engine's error values. An effect signals failure by throwing EffectError from apply();
// the dispatcher catches it (in C++, never across a Lua longjmp) and the binding turns it into
// one Lua error naming the effect.
#pragma once
#include <stdexcept>
#include <string>

#include "core/json.h"

namespace rb {

// A failure of an effect in the world: a process exited non-zero, a server did not answer.
// `result` carries what was observed so that `check = false` callers and the journal keep it.
class EffectError : public std::runtime_error {
 public:
  explicit EffectError(const std::string& msg, json result = nullptr)
      : std::runtime_error(msg), result_(std::move(result)) {}
  const json& result() const { return result_; }

 private:
  json result_;
};

// Thrown by a change's preview() when it finds that the live call would be refused or fail
// (uncommitted changes under a checkout, a missing source, an existing tag, an unknown service):
// the dry-run fails at that effect with this message, as the live run would. A preview that
// merely cannot look (a server down, no permission to read) throws EffectError instead: the plan
// then says "cannot preview" and goes on.
class WouldFail : public EffectError {
 public:
  using EffectError::EffectError;
};

// Bad input to a primitive: a missing or ill-typed argument. Names the argument.
class ArgError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The run was interrupted (Ctrl-C) or a deadline passed while an effect waited.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class DeadlineExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A usage error of the engine itself (bad CLI argument, bad runbook declaration): exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace rb
