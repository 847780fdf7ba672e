# Writes backlite.pc from backlite.pc.in at install time (run from an install(CODE)
# in the root CMakeLists.txt), when CMAKE_INSTALL_PREFIX is the prefix really used,
# including one given with `cmake --install --prefix`.
#
# In:  BACKLITE_PC_PREFIX, BACKLITE_PC_LIBDIR, BACKLITE_PC_INCLUDEDIR (relative to the
#      prefix or absolute), BACKLITE_PC_VERSION, BACKLITE_PC_DESCRIPTION,
#      BACKLITE_PC_TEMPLATE, BACKLITE_PC_OUTPUT.

foreach(_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${BACKLITE_PC_${_dir}}")
    # An absolute directory that lies under the prefix is still written relative to
    # ${prefix}, so that pkg-config --define-prefix can move the tree.
    file(RELATIVE_PATH _rel "${BACKLITE_PC_PREFIX}" "${BACKLITE_PC_${_dir}}")
    if(NOT _rel MATCHES "^\\.\\.")
      set(BACKLITE_PC_${_dir} "\${prefix}/${_rel}")
    endif()
  else()
    set(BACKLITE_PC_${_dir} "\${prefix}/${BACKLITE_PC_${_dir}}")
  endif()
endforeach()

configure_file("${BACKLITE_PC_TEMPLATE}" "${BACKLITE_PC_OUTPUT}" @ONLY)
