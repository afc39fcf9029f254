// taia serve's request layer: model names and modes, the fields read and refused, limits, the
// API key comparison, the browser policy.
#include <gtest/gtest.h>

#include "serve/api.h"
#include "serve/policy.h"

using namespace taia;
using namespace taia::serve;

namespace {

const std::vector<std::string> kAdapters = {"tiny", "med"};

// The ApiError a body gives (status, param), or {0, ""} when it parses.
std::pair<int, std::string> error_of(const std::string& body, bool chat = false, Limits limits = {}) {
  try {
    parse_completion_request(body, chat, limits, kAdapters);
    return {0, ""};
  } catch (const ApiError& e) {
    return {e.status, e.param};
  }
}

}  // namespace

TEST(ServeApi, ModelNamesAndModes) {
  EXPECT_EQ(served_model_names(kAdapters),
            (std::vector<std::string>{"base", "tiny:vanilla", "tiny:taia", "tiny:taif", "med:vanilla", "med:taia",
                                      "med:taif"}));
  EXPECT_EQ(resolve_model("tiny", std::nullopt, kAdapters).mode, "vanilla");
  EXPECT_EQ(resolve_model("tiny:taif", std::nullopt, kAdapters).mode, "taif");
  EXPECT_EQ(resolve_model("med:vanilla", std::string("taia"), kAdapters).mode, "taia");  // taia_mode wins
  EXPECT_EQ(resolve_model("base", std::nullopt, kAdapters).adapter, "");
  EXPECT_EQ(resolve_model("tiny:base", std::nullopt, kAdapters).mode, "base");
  EXPECT_THROW(resolve_model("nope", std::nullopt, kAdapters), ApiError);
  EXPECT_THROW(resolve_model("tiny:half", std::nullopt, kAdapters), ApiError);
  EXPECT_THROW(resolve_model("base:taia", std::nullopt, kAdapters), ApiError);
}

TEST(ServeApi, ReadsTheFieldsItImplementsAndRefusesTheRestByName) {
  const Completion c = parse_completion_request(
      R"({"model": "tiny:taia", "messages": [{"role": "developer", "content": "Be brief."},
          {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
          "max_completion_tokens": 7, "temperature": 0, "top_p": 0.5, "stop": "\n", "seed": 9, "stream": true,
          "stream_options": {"include_usage": true}, "n": 1, "user": "u", "presence_penalty": 0})",
      true, Limits{}, kAdapters);
  EXPECT_EQ(c.choice.adapter, "tiny");
  EXPECT_EQ(c.choice.mode, "taia");
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[0].role, "system");
  EXPECT_EQ(c.messages[1].content, "Hi there");
  EXPECT_EQ(c.max_tokens, 7);
  EXPECT_EQ(c.temperature, 0.0f);
  EXPECT_EQ(c.top_p, 0.5f);
  EXPECT_EQ(c.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(c.seed, std::optional<uint64_t>(9));
  EXPECT_TRUE(c.stream && c.include_usage);
  const Completion p = parse_completion_request(R"({"model": "base", "prompt": ["Once"]})", false, Limits{}, kAdapters);
  EXPECT_EQ(p.prompt, "Once");
  EXPECT_EQ(p.temperature, 1.0f);  // OpenAI's default

  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "logprobs": 2})"), std::make_pair(400, std::string("logprobs")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "n": 3})"), std::make_pair(400, std::string("n")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "frequency_penalty": 0.5})"),
            std::make_pair(400, std::string("frequency_penalty")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "top_p": 0})"), std::make_pair(400, std::string("top_p")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]})"),
            std::make_pair(400, std::string("stop")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "stop": [""]})"), std::make_pair(400, std::string("stop")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "max_tokens": 5000})"),
            std::make_pair(400, std::string("max_tokens")));
  EXPECT_EQ(error_of(R"({"model": "base", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true),
            std::make_pair(400, std::string("messages[0].content")));
  EXPECT_EQ(error_of(R"({"model": "base", "messages": [{"role": "user", "content": "x", "tool_calls": []}]})", true),
            std::make_pair(400, std::string("messages[0].tool_calls")));
  EXPECT_EQ(error_of(R"({"model": "base", "messages": "x"})", true), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "messages": []})"), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(error_of(R"({"prompt": "x"})"), std::make_pair(400, std::string("model")));
  EXPECT_EQ(error_of(R"({"model": "gpt-4", "prompt": "x"})"), std::make_pair(404, std::string("model")));
  EXPECT_EQ(error_of("[1, 2]"), std::make_pair(400, std::string("")));
  // A deeply nested value where a number is expected is named by its type (dump() would recurse
  // 300,000 levels deep); a part whose "type" is not a string is a 400, not a server error.
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  Limits big;
  big.max_body_bytes = 1 << 21;
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x", "max_tokens": )" + deep + "}", false, big),
            std::make_pair(400, std::string("max_tokens")));
  EXPECT_EQ(error_of(R"({"model": "base", "messages": [{"role": "user", "content": [{"type": 1, "text": "x"}]}]})", true),
            std::make_pair(400, std::string("messages[0].content")));
  Limits small;
  small.max_body_bytes = 10;
  EXPECT_EQ(error_of(R"({"model": "base", "prompt": "x"})", false, small).first, 413);
}

TEST(ServeApi, ErrorBodyAndKeyComparison) {
  const Json e = Json::parse(error_body(ApiError(400, "invalid_request_error", "bad 'n'", "n")));
  EXPECT_EQ(e["error"]["message"], "bad 'n'");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "n");
  EXPECT_TRUE(e["error"]["code"].is_null());
  EXPECT_TRUE(constant_time_equal("sekret", "sekret"));
  EXPECT_FALSE(constant_time_equal("sekret", "sekreT"));
  EXPECT_FALSE(constant_time_equal("sekret", "sekret2"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(ServePolicy, HostOriginAndContentType) {
  EXPECT_EQ(host_name("localhost:8080"), "localhost");
  EXPECT_EQ(host_name("[::1]:80"), "[::1]");
  EXPECT_EQ(host_name("127.0.0.1"), "127.0.0.1");
  const auto loopback = make_policy("127.0.0.1", {}, {});
  EXPECT_FALSE(check_browser_policy(loopback, "GET", "localhost:8080", "", ""));
  EXPECT_FALSE(check_browser_policy(loopback, "GET", "[::1]:8080", "", ""));
  const auto rebinding = check_browser_policy(loopback, "GET", "attacker.example:8080", "", "");
  ASSERT_TRUE(rebinding);
  EXPECT_EQ(rebinding->status, 403);
  // The page at / calls its own origin; another origin is refused; a form's content type is refused.
  EXPECT_FALSE(check_browser_policy(loopback, "POST", "127.0.0.1:8080", "http://127.0.0.1:8080", "application/json"));
  EXPECT_EQ(check_browser_policy(loopback, "GET", "127.0.0.1:8080", "https://evil.example", "")->status, 403);
  EXPECT_EQ(check_browser_policy(loopback, "POST", "127.0.0.1:8080", "", "text/plain")->status, 415);
  EXPECT_FALSE(check_browser_policy(loopback, "POST", "127.0.0.1:8080", "", "application/json; charset=utf-8"));
  // Bound to every address: any Host unless names are given; --cors-origin lets a page elsewhere in.
  const auto open = make_policy("0.0.0.0", {}, {"https://app.example"});
  EXPECT_FALSE(check_browser_policy(open, "GET", "server.lan:8080", "", ""));
  EXPECT_FALSE(check_browser_policy(open, "GET", "server.lan:8080", "https://app.example", ""));
  EXPECT_TRUE(check_browser_policy(open, "GET", "server.lan:8080", "https://other.example", ""));
  const auto named = make_policy("0.0.0.0", {"server.lan"}, {"*"});
  EXPECT_FALSE(check_browser_policy(named, "GET", "server.lan:8080", "https://any.example", ""));
  EXPECT_EQ(check_browser_policy(named, "GET", "other.lan", "", "")->status, 403);
}
