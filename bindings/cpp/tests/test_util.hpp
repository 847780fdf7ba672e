// Helpers shared by the C++ binding's tests.
#ifndef BACKLITE_CPP_TEST_UTIL_HPP
#define BACKLITE_CPP_TEST_UTIL_HPP

#include <backlite.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace backlite_test {

// A fresh directory per test, named after it, under the working directory: ctest runs
// the tests in parallel, each test in its own process.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::current_path() /
           (std::string(info->test_suite_name()) + "." + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

// Expects `statement` to throw backlite::Error with `expected_code`.
#define EXPECT_BACKLITE_ERROR(statement, expected_code)                                  \
  do {                                                                                   \
    try {                                                                                \
      statement;                                                                         \
      ADD_FAILURE() << #statement " did not throw";                                     \
    } catch (const backlite::Error& e_) {                                                \
      EXPECT_EQ(e_.code(), expected_code) << e_.what();                                  \
      EXPECT_STRNE(e_.what(), "");                                                       \
    }                                                                                    \
  } while (0)

inline std::vector<std::byte> bytes(std::string_view s) {
  return backlite::ByteView(s).to_bytes();
}

}  // namespace backlite_test

#endif
