// Values derived from a secret are secrets. Redaction (dispatch/redact.h) replaces a secret's
// text wherever it appears, so "Bearer " .. token is caught as it leaves Lua; what it cannot
// catch is a copy whose bytes changed: token:upper(), token:reverse(), format("%q", token), a
// spaced-out token:gsub(".", "%0 "), table.concat of its pieces with a separator, part of it.
// The sandbox's string functions (and table.concat, json.encode) therefore register such
// outputs with the run's redactor before the runbook can pass them anywhere; the runbook itself
// still gets the real values.
//
// The check costs nothing while the run has no secret. Otherwise: a function that builds a new
// string of n bytes looks for secrets in its n input bytes once (Redactor::covered, linear); a
// function that returns a part of its subject (sub, match/find/gmatch captures) asks the same of
// the subject, cached for the last long subject so that a loop over one text stays linear.
#pragma once
#include <lua.hpp>

#include <string_view>
#include <utility>
#include <vector>

namespace rb {

class Redactor;

// The run's redactor when it holds a secret, else null.
Redactor* derive_redactor(lua_State* L);
// Registers a value derived from a secret; raises a Lua error (naming `fn`) when the limits of
// Redactor::add_derived are reached.
void derive_register(lua_State* L, Redactor& r, std::string_view value, const char* fn);
// The ranges of the string at stack index idx covered by secrets (cached for long strings).
std::vector<std::pair<size_t, size_t>> derive_covered(lua_State* L, Redactor& r, int idx);
// s[off, off + len) was taken out of the string at idx: registers the parts of it (4 bytes or
// more) that lie on a secret.
void derive_window(lua_State* L, Redactor& r, int idx, size_t off, size_t len, const char* fn);
// Replaces G.string's upper, lower, reverse, sub, rep and format with versions that register
// what they derive (after install_bounded_string: rep wraps the bounded one).
void install_derive(lua_State* L, int G);

}  // namespace rb
