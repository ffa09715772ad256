// Anchor translation unit for the shared precompiled header (see loom_pch in CMakeLists.txt).
