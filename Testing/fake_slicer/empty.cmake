# intentionally empty: the stand-in's use file
