// `runbook api`: the primitive reference, generated from the registry the engine runs.
#pragma once
#include <string>

#include "dispatch/registry.h"

namespace rb::cli {

std::string api_text(const Registry& r);
std::string api_markdown(const Registry& r);
json api_json(const Registry& r);
// A lua-language-server annotation file (---@meta) of every global, primitive and stdlib module.
std::string api_luals(const Registry& r);

}  // namespace rb::cli
