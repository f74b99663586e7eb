# Installed like a real tool: `cmake --install build --prefix P` puts the labs in P/bin, the
# helpers they exec in P/libexec/oslab (found relative to each lab, never through the working
# directory), the driver as P/bin/oslab (which then runs the installed labs, no build), the
# scripts and the schema in P/share/oslab, the docs in P/share/doc/oslab and a man page per
# lab in P/share/man/man1. `scripts/oslab package` makes a .deb of the same with CPack.

install(PROGRAMS scripts/oslab DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES scripts/report.py scripts/compare.py scripts/doctor.py scripts/oslab_format.py scripts/oslab_html.py
              scripts/oslab_plots.py
        DESTINATION ${CMAKE_INSTALL_DATADIR}/oslab/scripts)
install(FILES docs/schema/oslab-1.json DESTINATION ${CMAKE_INSTALL_DATADIR}/oslab/docs/schema)
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md" PATTERN "*.json"
        PATTERN "*.cpp")
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(WRITE ${CMAKE_BINARY_DIR}/VERSION "${PROJECT_VERSION}\n")
install(FILES ${CMAKE_BINARY_DIR}/VERSION DESTINATION ${CMAKE_INSTALL_DATADIR}/oslab)

# Man pages from each lab's own --help, --version and --explain (help2man), so they never drift.
find_program(OSLAB_HELP2MAN help2man)
if(OSLAB_HELP2MAN)
  add_custom_target(oslab-man ALL)
  get_property(oslab_all_labs GLOBAL PROPERTY OSLAB_LABS)
  foreach(lab IN LISTS oslab_all_labs)
    set(page ${CMAKE_BINARY_DIR}/man/${lab}.1)
    add_custom_command(
      OUTPUT ${page}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${CMAKE_COMMAND} -DLAB=$<TARGET_FILE:${lab}> -DHELP2MAN=${OSLAB_HELP2MAN} -DOUT=${page}
              -P ${PROJECT_SOURCE_DIR}/cmake/manpage.cmake
      DEPENDS ${lab} ${PROJECT_SOURCE_DIR}/cmake/manpage.cmake
      COMMENT "Man page of ${lab}")
    add_custom_target(${lab}-man DEPENDS ${page})
    add_dependencies(oslab-man ${lab}-man)
    install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  endforeach()
  add_custom_command(
    OUTPUT ${CMAKE_BINARY_DIR}/man/oslab.1
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${OSLAB_HELP2MAN} --no-info --section=1 --name "the oslab driver: labs, report, compare, tests"
            --output=${CMAKE_BINARY_DIR}/man/oslab.1 ${PROJECT_SOURCE_DIR}/scripts/oslab
    DEPENDS ${PROJECT_SOURCE_DIR}/scripts/oslab
    COMMENT "Man page of oslab")
  add_custom_target(oslab-driver-man DEPENDS ${CMAKE_BINARY_DIR}/man/oslab.1)
  add_dependencies(oslab-man oslab-driver-man)
  install(FILES ${CMAKE_BINARY_DIR}/man/oslab.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "oslab: help2man not found: no man pages (apt-get install help2man)")
endif()

set(CPACK_PACKAGE_NAME oslab)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "oslab developers <oslab@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Linux systems-programming labs: processes, threads, IPC, synchronisation, measured")
set(CPACK_PACKAGE_DESCRIPTION
    "Real programs that demonstrate and measure fork, threads, context switches, IPC, locks and more on the real kernel, with verdicts on the course notes' claims, JSON results and a whole-machine report.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
find_program(OSLAB_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(OSLAB_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # the libraries the binaries link, by Debian's own tool
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3, util-linux")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-jsonschema, python3-matplotlib")
include(CPack)
