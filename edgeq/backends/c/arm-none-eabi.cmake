# CMake toolchain file for Arm Cortex-M with the GNU Arm Embedded toolchain (Debian's
# gcc-arm-none-eabi): cmake -DCMAKE_TOOLCHAIN_FILE=arm-none-eabi.cmake -DEDGEQ_CPU=cortex-m4
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)  # no board start-up code needed to probe
if(NOT EDGEQ_CPU)
  set(EDGEQ_CPU cortex-m4)
endif()
set(CMAKE_C_FLAGS_INIT "-mcpu=${EDGEQ_CPU} -mthumb -mfloat-abi=soft -ffunction-sections -fdata-sections")
set(CMAKE_C_FLAGS_RELEASE_INIT "-O2")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
