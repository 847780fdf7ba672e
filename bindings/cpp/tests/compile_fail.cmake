# Runs as `cmake -P` from ctest: compiles SOURCE with CXX (FLAGS, a ;-list) and
# -DBACKLITE_CASE=CASE. CASE 0 is the control and must compile; any other case must
# fail to compile with a diagnostic matching EXPECT.
foreach(var CXX SOURCE CASE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compile_fail.cmake: ${var} is not set")
  endif()
endforeach()
execute_process(
  COMMAND "${CXX}" ${FLAGS} "-DBACKLITE_CASE=${CASE}" -fsyntax-only "${SOURCE}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(CASE EQUAL 0)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the control case does not compile:\n${out}")
  endif()
  message(STATUS "case 0 compiles, as it must")
elseif(rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE} compiled; it must not (expected: ${EXPECT})")
elseif(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "case ${CASE} failed, but not with '${EXPECT}':\n${out}")
else()
  message(STATUS "case ${CASE} does not compile, as it must: ${EXPECT}")
endif()
