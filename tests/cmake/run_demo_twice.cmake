# ctest demo_memoize: runs the memoize demo twice on a fresh cache file.
# The first run must compute the value, the second must take it from the cache, and
# both must print the same value.
#
#   cmake -D DEMO=/path/to/memoize -D DB=/path/to/file.db -P run_demo_twice.cmake

if(NOT DEMO OR NOT DB)
  message(FATAL_ERROR "usage: cmake -D DEMO=<memoize> -D DB=<cache file> -P run_demo_twice.cmake")
endif()

get_filename_component(_dir "${DB}" DIRECTORY)
file(MAKE_DIRECTORY "${_dir}")
foreach(_suffix "" "-wal" "-shm" "-journal")
  file(REMOVE "${DB}${_suffix}")
endforeach()

function(run_demo run expected_source out_value)
  execute_process(COMMAND "${DEMO}" "${DB}"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
  message("---- run ${run}: exit ${_rc}\n${_out}${_err}")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "run ${run} of the demo failed (exit ${_rc})")
  endif()
  # The demo's result line: "result: <value> (<source>, <ms> ms)"
  if(NOT _out MATCHES "result: ([0-9]+) \\(([a-z ]+), [0-9.]+ ms\\)")
    message(FATAL_ERROR "run ${run}: no 'result: <value> (<source>, <ms> ms)' line in the output")
  endif()
  set(_value "${CMAKE_MATCH_1}")
  set(_source "${CMAKE_MATCH_2}")
  if(NOT _source STREQUAL expected_source)
    message(FATAL_ERROR "run ${run}: expected '${expected_source}', the demo reported '${_source}'")
  endif()
  if(NOT _out MATCHES "backlite_storage_set: [0-9.]+ us" OR NOT _out MATCHES "backlite_storage_get: [0-9.]+ us")
    message(FATAL_ERROR "run ${run}: the timing lines are missing")
  endif()
  set(${out_value} "${_value}" PARENT_SCOPE)
endfunction()

run_demo(1 "computed" _first)
run_demo(2 "cache hit" _second)
if(NOT _first STREQUAL _second)
  message(FATAL_ERROR "the cached value ${_second} differs from the computed one ${_first}")
endif()
message("demo_memoize: computed ${_first} on the first run, read it back from the cache on the second")
