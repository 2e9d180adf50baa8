// Prebuilt Linux binaries must load on glibc 2.28. glibc 2.34 moved the pthread functions into
// libc with new symbol versions, so a build on a newer glibc would require 2.34; binding the references
// made in this translation unit to the original x86-64 versions (2.2.5, condition variables 2.3.2) keeps
// the floor where the rest of the addon puts it. scripts/check-portability.js verifies the result.
// GCC only (prebuilds use it): clang's assembler turns these into broken PLT relocations.
#pragma once

#if defined(__linux__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(__clang__)
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_init,pthread_mutex_init@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_destroy,pthread_mutex_destroy@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_lock,pthread_mutex_lock@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_unlock,pthread_mutex_unlock@GLIBC_2.2.5");
__asm__(".symver pthread_cond_init,pthread_cond_init@GLIBC_2.3.2");
__asm__(".symver pthread_cond_destroy,pthread_cond_destroy@GLIBC_2.3.2");
__asm__(".symver pthread_cond_wait,pthread_cond_wait@GLIBC_2.3.2");
__asm__(".symver pthread_cond_broadcast,pthread_cond_broadcast@GLIBC_2.3.2");
#elif defined(__linux__) && defined(__aarch64__) && defined(__GLIBC__) && !defined(__clang__)
// AArch64's first glibc (2.17) versions.
__asm__(".symver pthread_create,pthread_create@GLIBC_2.17");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.17");
__asm__(".symver pthread_mutex_init,pthread_mutex_init@GLIBC_2.17");
__asm__(".symver pthread_mutex_destroy,pthread_mutex_destroy@GLIBC_2.17");
__asm__(".symver pthread_mutex_lock,pthread_mutex_lock@GLIBC_2.17");
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@GLIBC_2.17");
__asm__(".symver pthread_mutex_unlock,pthread_mutex_unlock@GLIBC_2.17");
__asm__(".symver pthread_cond_init,pthread_cond_init@GLIBC_2.17");
__asm__(".symver pthread_cond_destroy,pthread_cond_destroy@GLIBC_2.17");
__asm__(".symver pthread_cond_wait,pthread_cond_wait@GLIBC_2.17");
__asm__(".symver pthread_cond_broadcast,pthread_cond_broadcast@GLIBC_2.17");
#endif
