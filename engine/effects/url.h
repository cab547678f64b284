// URL helpers shared by the HTTP-speaking effect modules (http.*, notify.*).
#pragma once
#include <string>

namespace rb {

// scheme://host[:port] of a URL, without userinfo (never shown); the URL itself when it has no
// scheme. Defined in http.cc.
std::string url_origin(const std::string& url);

}  // namespace rb
