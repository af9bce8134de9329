#include "router/text_util.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace expertserve::router {
namespace {

using ::testing::ElementsAre;

TEST(TextUtilTest, DecodesUtf8AndReplacesInvalidBytes) {
  std::vector<char32_t> cps;
  DecodeUtf8("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80", &cps);  // a é 中 😀
  EXPECT_THAT(cps, ElementsAre(U'a', 0xE9, 0x4E2D, 0x1F600));
  cps.clear();
  // Lone continuation, overlong "/", surrogate, truncated 3-byte sequence.
  DecodeUtf8(std::string("\x80" "\xC0\xAF" "\xED\xA0\x80" "x\xE4\xB8", 9), &cps);
  EXPECT_EQ(cps.size(), 9u);  // each bad byte is one U+FFFD, 'x' survives
  EXPECT_EQ(cps[6], U'x');
  EXPECT_EQ(cps[0], 0xFFFDu);
  EXPECT_EQ(CountCodePoints("a\xC3\xA9\xE4\xB8\xAD"), 3u);
  EXPECT_EQ(CountCodePoints(""), 0u);
}

TEST(TextUtilTest, LowerCasesCommonScripts) {
  EXPECT_EQ(SimpleLower(U'A'), U'a');
  EXPECT_EQ(SimpleLower(U'z'), U'z');
  EXPECT_EQ(SimpleLower(0xC9), 0xE9u);    // É -> é
  EXPECT_EQ(SimpleLower(0xD7), 0xD7u);    // × unchanged
  EXPECT_EQ(SimpleLower(0x100), 0x101u);  // Ā -> ā
  EXPECT_EQ(SimpleLower(0x141), 0x142u);  // Ł -> ł (odd capital)
  EXPECT_EQ(SimpleLower(0x178), 0xFFu);   // Ÿ -> ÿ
  EXPECT_EQ(SimpleLower(0x3A3), 0x3C3u);  // Σ -> σ
  EXPECT_EQ(SimpleLower(0x416), 0x436u);  // Ж -> ж
  EXPECT_EQ(SimpleLower(0x401), 0x451u);  // Ё -> ё
  EXPECT_EQ(SimpleLower(0x4E2D), 0x4E2Du);
}

TEST(TextUtilTest, CharacterClasses) {
  EXPECT_TRUE(IsSpaceOrControl(U' '));
  EXPECT_TRUE(IsSpaceOrControl(0x3000));
  EXPECT_TRUE(IsSpaceOrControl(0xA0));
  EXPECT_FALSE(IsSpaceOrControl(U'a'));
  EXPECT_TRUE(IsWordChar(U'_'));
  EXPECT_TRUE(IsWordChar(0xE9));
  EXPECT_TRUE(IsWordChar(0x436));
  EXPECT_FALSE(IsWordChar(U'+'));
  EXPECT_FALSE(IsWordChar(0x2211));  // ∑ is a symbol
  EXPECT_TRUE(IsCjk(0x4E2D));
  EXPECT_TRUE(IsCjk(0xAC00));
  EXPECT_FALSE(IsCjk(U'a'));
}

TEST(TextUtilTest, TruncatesHeadAndTailOnCodePoints) {
  EXPECT_EQ(TruncateHeadTail("abcdef", 0), "abcdef");
  EXPECT_EQ(TruncateHeadTail("abcdef", 6), "abcdef");
  EXPECT_EQ(TruncateHeadTail("abcdefgh", 4), "ab\ngh");
  EXPECT_EQ(TruncateHeadTail("abcdefgh", 5), "ab\nfgh");
  // Ten two-byte characters: 20 bytes > 4, but cut on characters.
  std::string e;
  for (int i = 0; i < 10; ++i) e += "\xC3\xA9";
  EXPECT_EQ(TruncateHeadTail(e, 4), "\xC3\xA9\xC3\xA9\n\xC3\xA9\xC3\xA9");
  // Eight bytes but only four characters: kept whole.
  EXPECT_EQ(TruncateHeadTail(e.substr(0, 8), 4), e.substr(0, 8));
}

}  // namespace
}  // namespace expertserve::router
