# A minimal stand-in for Slicer's CMake package, for testing the extension's CMake files only.
# Its macros check that every listed file exists and record what each would build into
# ${CMAKE_BINARY_DIR}/slicer_stand_in.txt; they build nothing.
set(Slicer_FOUND TRUE)
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer/qt-scripted-modules)
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer/qt-scripted-modules)
file(WRITE ${CMAKE_BINARY_DIR}/slicer_stand_in.txt "")

function(_stand_in_check_files folder)
  foreach(file ${ARGN})
    if(NOT EXISTS ${folder}/${file})
      message(FATAL_ERROR "listed file ${folder}/${file} does not exist")
    endif()
  endforeach()
endfunction()

macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY "WITH_GENERIC_TESTS;WITH_SUBDIR" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  _stand_in_check_files(${CMAKE_CURRENT_SOURCE_DIR} ${MY_SCRIPTS} ${MY_RESOURCES})
  if(MY_WITH_GENERIC_TESTS)
    set(_tests ON)
  else()
    set(_tests OFF)
  endif()
  file(APPEND ${CMAKE_BINARY_DIR}/slicer_stand_in.txt "module ${MY_NAME} tests=${_tests}\n")
endmacro()

macro(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT" "" ${ARGN})
  _stand_in_check_files(${CMAKE_CURRENT_SOURCE_DIR} ${MY_SCRIPT})
  file(APPEND ${CMAKE_BINARY_DIR}/slicer_stand_in.txt "unittest ${MY_SCRIPT}\n")
endmacro()

macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR;GLOBAL_TARGET" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR"
    "SCRIPTS;RESOURCES" ${ARGN})
  _stand_in_check_files(${MY_SOURCE_DIR} ${MY_SCRIPTS} ${MY_RESOURCES})
  file(APPEND ${CMAKE_BINARY_DIR}/slicer_stand_in.txt "python-scripts ${MY_TARGET_NAME} ${MY_SCRIPTS}\n")
endmacro()
