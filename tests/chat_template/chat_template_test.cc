// Language features one by one. Expected strings are derived by hand from
// Jinja's documented semantics (Python Jinja with trim_blocks and
// lstrip_blocks, as transformers configures it).
#include "engine/chat_template/chat_template.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/status_matchers.h"

namespace expertserve::engine {
namespace {

using chat_template::Value;
using ::expertserve::testing::IsOk;
using ::expertserve::testing::StatusIs;
using ::testing::HasSubstr;

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"},
    {"user", "2+2?"}};

absl::StatusOr<std::string> RenderWith(
    const std::string& src, std::vector<std::pair<std::string, Value>> vars,
    const std::vector<ChatMessage>& messages = kConversation) {
  ES_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Compile(src));
  TemplateContext ctx;
  ctx.bos_token = "<s>";
  ctx.eos_token = "</s>";
  ctx.variables = std::move(vars);
  return t.Render(messages, /*add_generation_prompt=*/true, ctx);
}

std::string R(const std::string& src,
              std::vector<std::pair<std::string, Value>> vars = {}) {
  absl::StatusOr<std::string> out = RenderWith(src, std::move(vars));
  if (!out.ok()) return "ERROR: " + std::string(out.status().message());
  return *out;
}

TEST(ChatTemplateTest, TextAndTrailingNewline) {
  EXPECT_EQ(R("plain text"), "plain text");
  EXPECT_EQ(R("one newline is dropped\n"), "one newline is dropped");
  EXPECT_EQ(R("only one\n\n"), "only one\n");
  EXPECT_EQ(R("a\r\nb"), "a\nb");
  EXPECT_EQ(R(""), "");
}

TEST(ChatTemplateTest, Literals) {
  EXPECT_EQ(R("{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}"), "abcd");
  EXPECT_EQ(R("{{ 42 }} {{ -7 }} {{ 1.5 }} {{ 2.0 }} {{ 1_000 }}"),
            "42 -7 1.5 2.0 1000");
  EXPECT_EQ(R("{{ true }} {{ False }} {{ none }}"), "True False None");
  EXPECT_EQ(R("{{ [1, 'a', none] }}"), "[1, 'a', None]");
  EXPECT_EQ(R("{{ {'k': 1, 'j': [true]} }}"), "{'k': 1, 'j': [True]}");
  EXPECT_EQ(R("{{ (1, 2) }}"), "[1, 2]");  // tuples are lists here
  EXPECT_EQ(R("{{ 'tab\\tnew\\nq\\'\\u00e9\\x41' }}"), "tab\tnew\nq'\xC3\xA9" "A");
  EXPECT_EQ(R("{{ \"it's\" }}"), "it's");
}

TEST(ChatTemplateTest, Arithmetic) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 10 }}"), "7 9 1024");
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }}"),
            "3 -4 1 2");
  EXPECT_EQ(R("{{ 1 / 2 }} {{ 4 / 2 }} {{ 1.5 + 1 }}"), "0.5 2.0 2.5");
  EXPECT_EQ(R("{{ 'a' + 'b' }} {{ 'x' ~ 1 ~ none }} {{ 'ab' * 3 }}"),
            "ab x1None ababab");
  EXPECT_EQ(R("{{ [1] + [2] }}"), "[1, 2]");
  EXPECT_THAT(R("{{ 'a' + 1 }}"), HasSubstr("unsupported operand types for +"));
  EXPECT_THAT(R("{{ 1 // 0 }}"), HasSubstr("division or modulo by zero"));
}

TEST(ChatTemplateTest, ComparisonsAndLogic) {
  EXPECT_EQ(R("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }}"),
            "True False True True");
  EXPECT_EQ(R("{{ 'a' != 'a' }} {{ [1, 2] == [1, 2] }}"), "False True");
  EXPECT_EQ(R("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }}|"), "x y |");
  EXPECT_EQ(R("{{ not 0 }} {{ not not 'a' }}"), "True True");
  EXPECT_EQ(R("{{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }}"),
            "True True True");
  EXPECT_EQ(R("{{ 3 not in [1, 2] }} {{ 'z' not in 'abc' }}"), "True True");
  EXPECT_EQ(R("{{ 'y' if 1 > 0 else 'n' }}{{ 'skip' if false }}"), "y");
  EXPECT_THAT(R("{{ 1 < 2 < 3 }}"), HasSubstr("chained comparisons"));
}

TEST(ChatTemplateTest, WhitespaceControl) {
  EXPECT_EQ(R("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(R("a\n  {%- if true -%}\n  b  {%- endif %}"), "ab");
  // trim_blocks removes the first newline after a block tag.
  EXPECT_EQ(R("{% if true %}\nx\n{% endif %}\ny"), "x\ny");
  // lstrip_blocks strips indentation before a block tag, not before {{.
  EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(R("  {{ 'v' }}\n"), "  v");
  // Text on the same line before a tag is not stripped.
  EXPECT_EQ(R("t  {% if true %}x{% endif %}"), "t  x");
  // `+` disables lstrip_blocks / trim_blocks.
  EXPECT_EQ(R("  {%+ if true %}x{% endif +%}\ny"), "  x\ny");
  // Expression tags never trim the following newline.
  EXPECT_EQ(R("{{ 'a' }}\nb"), "a\nb");
}

TEST(ChatTemplateTest, Comments) {
  EXPECT_EQ(R("a{# note #}b"), "ab");
  EXPECT_EQ(R("a {#- note -#} b"), "ab");
  EXPECT_EQ(R("  {# own line #}\nb"), "b");
  EXPECT_EQ(R("{# {{ not rendered }} {% if %} #}ok"), "ok");
}

TEST(ChatTemplateTest, ForLoop) {
  EXPECT_EQ(
      R("{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}"
        "{{ loop.revindex }}{{ loop.revindex0 }}{{ x }}"
        "{{ 'F' if loop.first }}{{ 'L' if loop.last }}{{ loop.length }};"
        "{% endfor %}"),
      "1032aF3;2121b3;3210cL3;");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1,2,3,4] if x is even %}{{ x }}/{{ loop.length }} "
              "{% endfor %}"),
            "2/2 4/2 ");
  EXPECT_EQ(R("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},"
              "{% endfor %}"),
            "a=1,b=2,");
  EXPECT_EQ(R("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}"), "ab");
  EXPECT_EQ(R("{% for c in 'hé' %}[{{ c }}]{% endfor %}"), "[h][\xC3\xA9]");
  EXPECT_EQ(R("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}"
              "{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "02");
  EXPECT_EQ(R("{% for m in messages %}{{ m.role[0] }}{% endfor %}"), "suau");
  EXPECT_EQ(R("{% for x in [1,2] %}{{ loop.previtem }}|{{ loop.nextitem }};"
              "{% endfor %}"),
            "|2;1|;");
  EXPECT_EQ(R("{% for x in undefined_var %}x{% endfor %}ok"), "ok");
  EXPECT_THAT(R("{% for x in none %}{% endfor %}"), HasSubstr("not iterable"));
  EXPECT_THAT(R("{% for x in 5 %}{% endfor %}"), HasSubstr("not iterable"));
}

TEST(ChatTemplateTest, IfElifElse) {
  const std::string t =
      "{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three"
      "{% else %}many{% endif %}";
  EXPECT_EQ(R(t, {{"x", 1}}), "one");
  EXPECT_EQ(R(t, {{"x", 2}}), "two");
  EXPECT_EQ(R(t, {{"x", 3}}), "three");
  EXPECT_EQ(R(t, {{"x", 9}}), "many");
  EXPECT_EQ(R("{% if [] %}t{% else %}f{% endif %}{% if {} %}t{% else %}f{% endif %}"
              "{% if 'x' %}t{% endif %}{% if 0.0 %}t{% else %}f{% endif %}"),
            "fftf");
}

TEST(ChatTemplateTest, SetAndScoping) {
  EXPECT_EQ(R("{% set x = 'a' %}{% set y = x ~ 'b' %}{{ y }}"), "ab");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(R("{% set block %}in {{ 'side' }}{% endset %}[{{ block }}]"),
            "[in side]");
  // A set inside a for body does not leak out of the loop (Jinja scoping)...
  EXPECT_EQ(R("{% set x = 0 %}{% for i in [1,2] %}{% set x = i %}{% endfor %}"
              "{{ x }}"),
            "0");
  // ...which is why templates use namespace().
  EXPECT_EQ(R("{% set ns = namespace(x=0, s='') %}{% for i in [1,2,3] %}"
              "{% set ns.x = ns.x + i %}{% set ns.s = ns.s ~ i %}{% endfor %}"
              "{{ ns.x }} {{ ns.s }}"),
            "6 123");
  // An if block is not a scope.
  EXPECT_EQ(R("{% if true %}{% set z = 5 %}{% endif %}{{ z }}"), "5");
  EXPECT_THAT(R("{% set d = {'a': 1} %}{% set d.a = 2 %}"),
              HasSubstr("only namespace() objects"));
}

TEST(ChatTemplateTest, Macros) {
  EXPECT_EQ(R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}"
              "{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', punct='?') }}"),
            "Hi Ann! Hi Bo?");
  EXPECT_EQ(R("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}"
              "{% endmacro %}{{ f(3) }}"),
            "321");
  EXPECT_THAT(R("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"),
              HasSubstr("nested deeper"));
}

TEST(ChatTemplateTest, AttributesSubscriptsAndSlices) {
  EXPECT_EQ(R("{{ messages[0].content }}|{{ messages[0]['role'] }}|"
              "{{ messages[-1].content }}"),
            "Be brief.|system|2+2?");
  EXPECT_EQ(R("{{ messages|length }} {{ messages[1:3]|length }} "
              "{{ (messages[::-1]|first).content }}"),
            "4 2 2+2?");
  EXPECT_EQ(R("{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ 'hello'[-3:] }} "
              "{{ 'hello'[::2] }} {{ 'héllo'[1] }}"),
            "el olleh llo hlo \xC3\xA9");
  EXPECT_EQ(R("{{ [1,2,3,4][1:-1] }} {{ [1,2,3][5:] }} {{ [1,2,3][-10:1] }}"),
            "[2, 3] [] [1]");
  EXPECT_EQ(R("{{ [1,2][7] is defined }} {{ messages[0].nope is defined }}"),
            "False False");
}

TEST(ChatTemplateTest, UndefinedSemantics) {
  EXPECT_EQ(R("[{{ missing }}]"), "[]");
  EXPECT_EQ(R("[{{ missing.attr.deeper }}]"), "[]");
  EXPECT_EQ(R("{{ missing is defined }} {{ missing is undefined }}"),
            "False True");
  EXPECT_EQ(R("{% if missing %}t{% else %}f{% endif %}"), "f");
  EXPECT_EQ(R("{{ missing | default('d') }} {{ '' | default('d') }}|"
              "{{ '' | default('d', true) }}"),
            "d |d");
  EXPECT_EQ(R("{{ missing ~ 'x' }}"), "x");
  EXPECT_EQ(R("{{ missing == none }}"), "False");
  EXPECT_THAT(R("{{ missing + 'x' }}"), HasSubstr("undefined"));
  EXPECT_THAT(R("{{ missing() }}"), HasSubstr("undefined"));
  EXPECT_THAT(R("{{ 'abc'.nosuch() }}"), HasSubstr("has no attribute 'nosuch'"));
}

TEST(ChatTemplateTest, Tests) {
  EXPECT_EQ(R("{{ none is none }} {{ 'a' is string }} {{ 1 is string }} "
              "{{ {} is mapping }} {{ [] is mapping }}"),
            "True True False True False");
  EXPECT_EQ(R("{{ [] is iterable }} {{ 'x' is sequence }} {{ 3 is iterable }}"),
            "True True False");
  EXPECT_EQ(R("{{ 3 is number }} {{ 3.5 is number }} {{ 'x' is number }} "
              "{{ 3 is integer }} {{ 3.5 is float }}"),
            "True True False True True");
  EXPECT_EQ(R("{{ true is true }} {{ 1 is true }} {{ false is false }} "
              "{{ true is boolean }}"),
            "True False True True");
  EXPECT_EQ(R("{{ 3 is equalto 3 }} {{ 3 is equalto(4) }} {{ 'a' is eq 'a' }} "
              "{{ 4 is divisibleby 2 }} {{ 3 is odd }} {{ 3 is not even }}"),
            "True False True True True True");
  EXPECT_EQ(R("{{ x is not none }}", {{"x", 1}}), "True");
  EXPECT_EQ(R("{{ range is callable }} {{ 'abc' is lower }} {{ 2 is in [1,2] }}"),
            "True True True");
}

TEST(ChatTemplateTest, Filters) {
  EXPECT_EQ(R("[{{ '  x  ' | trim }}][{{ 'xxaxx' | trim('x') }}]"), "[x][a]");
  EXPECT_EQ(R("{{ 'Hello' | lower }} {{ 'Hello' | upper }} "
              "{{ 'hELLO wORLD' | capitalize }} {{ 'hello big-world' | title }}"),
            "hello HELLO Hello world Hello Big-World");
  EXPECT_EQ(R("{{ 'abc' | length }} {{ [1,2] | count }} {{ {'a': 1} | length }} "
              "{{ 'héllo' | length }}"),
            "3 2 1 5");
  EXPECT_EQ(R("{{ [3,1,2] | first }} {{ [3,1,2] | last }} {{ 'abc' | first }}"),
            "3 2 a");
  EXPECT_EQ(R("{{ ['a','b'] | join }} {{ ['a','b'] | join(', ') }} "
              "{{ messages | join('|', attribute='role') }}"),
            "ab a, b system|user|assistant|user");
  EXPECT_EQ(R("{{ 'a-b-c' | replace('-', '+') }} "
              "{{ 'a-b-c' | replace('-', '', 1) }}"),
            "a+b+c ab-c");
  EXPECT_EQ(R("{{ 12 | string ~ 'x' }} {{ '42' | int + 1 }} {{ 'x' | int }} "
              "{{ 3.9 | int }} {{ '2.5' | float }}"),
            "12x 43 0 3 2.5");
  EXPECT_EQ(R("{{ 'ab' | list }} {{ {'a': 1} | items | list }}"),
            "['a', 'b'] [['a', 1]]");
  EXPECT_EQ(R("{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
              "{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') "
              "| join(',') }}"),
            "2 system,assistant");
  EXPECT_EQ(R("{{ messages | map(attribute='role') | unique | list }}"),
            "['system', 'user', 'assistant']");
  EXPECT_EQ(R("{{ ['B','a','c'] | sort }} {{ [3,1,2] | sort(reverse=true) }} "
              "{{ [1,2,3] | reverse | list }} {{ [1,2,3] | sum }}"),
            "['a', 'B', 'c'] [3, 2, 1] [3, 2, 1] 6");
  EXPECT_EQ(R("{{ ['a','B'] | map('upper') | join }} {{ [1,0,2] | select | list }}"),
            "AB [1, 2]");
  EXPECT_EQ(R("{{ '<a & \"b\">' | escape }} {{ '<b>' | safe }}"),
            "&lt;a &amp; &#34;b&#34;&gt; <b>");
  EXPECT_EQ(R("{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 'a\nb' | indent(2) }}"),
            "3 2.57 a\n  b");
}

TEST(ChatTemplateTest, ToJsonFollowsHuggingFace) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=..., sort_keys=...)
  EXPECT_EQ(R("{{ {'b': [1, 2.5, none, true], 'a': 'é\"\\n'} | tojson }}"),
            "{\"b\": [1, 2.5, null, true], \"a\": \"\xC3\xA9\\\"\\n\"}");
  EXPECT_EQ(R("{{ {'b': 1, 'a': [1, {}], 'c': []} | tojson(indent=2) }}"),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {}\n  ],\n  \"c\": []\n}");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"),
            "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(R("{{ 'é😀' | tojson(ensure_ascii=true) }}"),
            "\"\\u00e9\\ud83d\\ude00\"");
  EXPECT_EQ(R("{{ '\x01' | tojson }}"), "\"\\u0001\"");
}

TEST(ChatTemplateTest, StringMethods) {
  EXPECT_EQ(R("[{{ '  a b  '.strip() }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}]"
              "[{{ 'x..'.rstrip('.') }}]"),
            "[a b][x\n][x]");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ '  a  b '.split() }} "
              "{{ 'a,b,c'.split(',', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b,c']");
  EXPECT_EQ(R("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }}"),
            "True True");
  EXPECT_EQ(R("{{ 'aXa'.replace('a', 'b') }} {{ 'ab'.upper() }} {{ 'AB'.lower() }} "
              "{{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}"),
            "bXb AB ab Hello World Hello");
  EXPECT_EQ(R("{{ '{} and {}'.format(1, 'two') }} {{ 'x{n}'.format(n=3) }}"),
            "1 and two x3");
  EXPECT_EQ(R("{{ 'abcabc'.find('c') }} {{ 'abcabc'.count('bc') }} "
              "{{ '-'.join(['a', 'b']) }}"),
            "2 2 a-b");
  // Qwen3's reasoning split.
  EXPECT_EQ(R("{{ '<think>\\nr\\n</think>\\n\\nanswer'.split('</think>')[-1]"
              ".lstrip('\\n') }}"),
            "answer");
}

TEST(ChatTemplateTest, DictMethods) {
  EXPECT_EQ(R("{% set d = {'a': 1, 'b': 2} %}{{ d.keys() }} {{ d.values() }} "
              "{{ d.items() }} {{ d.get('a') }} {{ d.get('z') }} "
              "{{ d.get('z', 'dflt') }}"),
            "['a', 'b'] [1, 2] [['a', 1], ['b', 2]] 1 None dflt");
  // Attribute syntax prefers the method; subscript prefers the key.
  EXPECT_EQ(R("{% set d = {'items': 'key'} %}{{ d['items'] }} "
              "{{ d.items() | length }}"),
            "key 1");
}

TEST(ChatTemplateTest, Globals) {
  EXPECT_EQ(R("{{ range(3) }} {{ range(1, 7, 2) }} {{ range(3, 0, -1) }}"),
            "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
  EXPECT_EQ(R("{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}"),
            "<s>|</s>|True");
  std::string date = R("{{ strftime_now('%Y') }}");
  EXPECT_EQ(date.size(), 4u) << date;
  EXPECT_EQ(R("{{ dict(a=1)['a'] }}"), "1");
}

TEST(ChatTemplateTest, RaiseExceptionPropagatesMessage) {
  absl::StatusOr<std::string> out = RenderWith(
      "before{{ raise_exception('Conversation roles must alternate') }}", {});
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kInvalidArgument,
                            "Conversation roles must alternate"));
}

TEST(ChatTemplateTest, GenerationTagRendersBody) {
  EXPECT_EQ(R("a{% generation %}b{% endgeneration %}c"), "abc");
}

TEST(ChatTemplateErrorTest, ParseErrorsNamePosition) {
  struct Case {
    std::string src;
    std::string message;
  };
  const Case cases[] = {
      {"ab\n{{ 'x' ", "line 2, column 1: unterminated expression"},
      {"{% if true %}x", "line 1, column 1: block is never closed: expected '{% endif %}'"},
      {"x{% for a in b %}", "line 1, column 2: block is never closed"},
      {"{{ x | nosuch }}", "line 1, column 8: unknown filter 'nosuch'"},
      {"{{ x is nosuch }}", "line 1, column 9: unknown test 'nosuch'"},
      {"\n  {% frobnicate %}", "line 2, column 6: unknown tag 'frobnicate'"},
      {"{% include 'x' %}", "the '{% include %}' tag is not supported"},
      {"{% endif %}", "unexpected '{% endif %}'"},
      {"{# open", "line 1, column 1: unterminated comment"},
      {"{{ 'open }}", "unterminated string literal"},
      {"{{ 1 + }}", "line 1, column 8: expected an expression, got '}}'"},
      {"{{ a ; }}", "line 1, column 6: unexpected character ';'"},
      {"{% for x in y recursive %}{% endfor %}", "recursive for loops"},
      {"{% if x %}{% endfor %}", "unexpected '{% endfor %}'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Compile(c.src);
    EXPECT_THAT(t, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr(c.message)))
        << c.src;
  }
}

TEST(ChatTemplateErrorTest, RenderErrorsNamePosition) {
  EXPECT_THAT(RenderWith("line1\n  {{ 1 // 0 }}", {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 2, column")));
  EXPECT_THAT(RenderWith("{{ 'abc'.nosuch() }}", {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1, column")));
}

TEST(ChatTemplateErrorTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_THAT(ChatTemplate::Compile("{{ " + deep + " }}"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("nesting deeper")));
  std::string blocks;
  for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
  EXPECT_THAT(ChatTemplate::Compile(blocks),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("nesting deeper")));
}

TEST(ChatTemplateErrorTest, LimitsBoundWork) {
  ES_ASSERT_OK_AND_ASSIGN(
      ChatTemplate t,
      ChatTemplate::Compile("{% for a in range(1000) %}{% for b in range(1000) %}"
                            "{% endfor %}{% endfor %}"));
  TemplateContext ctx;
  ctx.limits.max_loop_iterations = 10000;
  EXPECT_THAT(t.Render(kConversation, false, ctx),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("loop iterations")));
  ES_ASSERT_OK_AND_ASSIGN(
      ChatTemplate big, ChatTemplate::Compile("{{ 'x' * 100000 }}"));
  ctx.limits.max_output_bytes = 1000;
  EXPECT_THAT(big.Render(kConversation, false, ctx),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("too large")));
  ES_ASSERT_OK_AND_ASSIGN(
      ChatTemplate grow,
      ChatTemplate::Compile("{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"));
  EXPECT_THAT(grow.Render(kConversation, false, ctx),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("exceeds 1000 bytes")));
}

TEST(ChatTemplateErrorTest, HostileValuesAreBounded) {
  TemplateContext ctx;
  ctx.limits.max_output_bytes = 1 << 16;
  ctx.limits.max_loop_iterations = 20000;
  const std::pair<const char*, const char*> cases[] = {
      // A value nested by a loop-carried namespace attribute.
      {"{% set ns = namespace(v=[]) %}{% for i in range(1000) %}"
       "{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}",
       "nested deeper than 64"},
      // Branching recursion: 2^20 calls within the depth bound.
      {"{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
       "{% endmacro %}{{ f(20) }}",
       "macro calls"},
      {"{{ ('x' * 60000).replace('', 'yy') }}", "too large"},
      {"{{ ('{0}' * 1000).format('x' * 60000) }}", "too large"},
      {"{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
       "{% set ns.l = ns.l + ns.l %}{% endfor %}",
       "too large"},
  };
  for (const auto& [src, message] : cases) {
    ES_ASSERT_OK_AND_ASSIGN(ChatTemplate t, ChatTemplate::Compile(src));
    EXPECT_THAT(t.Render(kConversation, false, ctx),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << src;
  }
}

TEST(ChatTemplateTest, RenderIsThreadSafe) {
  ES_ASSERT_OK_AND_ASSIGN(
      ChatTemplate t,
      ChatTemplate::Compile("{% set ns = namespace(n=0) %}{% for m in messages %}"
                            "{% set ns.n = ns.n + 1 %}{{ m.role }}:{{ m.content }};"
                            "{% endfor %}{{ ns.n }}"));
  const std::string expected =
      "system:Be brief.;user:Hi;assistant:Hello!;user:2+2?;4";
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<std::string> out = t.Render(kConversation, false, {});
        if (!out.ok() || *out != expected) ++failures[k];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(ChatTemplateConfigTest, StringTemplateAndAddedTokens) {
  ES_ASSERT_OK_AND_ASSIGN(
      ChatTemplateConfig c,
      ParseChatTemplateConfig(R"({"chat_template": "{{ bos_token }}",
          "bos_token": {"__type": "AddedToken", "content": "<B>"},
          "eos_token": "</E>"})"));
  EXPECT_EQ(c.source, "{{ bos_token }}");
  EXPECT_EQ(c.bos_token, "<B>");
  EXPECT_EQ(c.eos_token, "</E>");
}

TEST(ChatTemplateConfigTest, ListPicksDefault) {
  ES_ASSERT_OK_AND_ASSIGN(
      ChatTemplateConfig c,
      ParseChatTemplateConfig(R"({"chat_template": [
          {"name": "tool_use", "template": "T"},
          {"name": "default", "template": "D"}], "bos_token": null})"));
  EXPECT_EQ(c.source, "D");
  EXPECT_EQ(c.bos_token, "");
  EXPECT_THAT(ParseChatTemplateConfig(R"({"chat_template": [{"name": "x", "template": "T"}]})"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ParseChatTemplateConfig(R"({"eos_token": "x"})"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ParseChatTemplateConfig("{not json"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ParseChatTemplateConfig(R"({"chat_template": 5})"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ChatTemplateConfigTest, LoadsFromModelDirectory) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("es_chat_template_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "tokenizer_config.json");
    out << R"({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
               "eos_token": "<eos>"})";
  }
  ES_ASSERT_OK_AND_ASSIGN(ChatTemplateConfig c,
                          LoadChatTemplateConfig(dir.string()));
  EXPECT_EQ(c.eos_token, "<eos>");
  ES_ASSERT_OK_AND_ASSIGN(ChatTemplate t, ChatTemplate::Compile(c.source));
  ES_ASSERT_OK_AND_ASSIGN(std::string out, t.Render(kConversation, false, {}));
  EXPECT_EQ(out, "Be brief.HiHello!2+2?");
  std::filesystem::remove_all(dir);
  EXPECT_THAT(LoadChatTemplateConfig(dir.string()),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace expertserve::engine
