"""SuperResolution's Qt-free part: the logic the panel, the console and batch runs call."""
