# Sourced by the bench scripts: the evaluation texts and the calibration
# text, from ../shared/data when it is there, else the excerpts vendored
# in tests/data. Needs $root; sets texts (NAME:PATH entries) and calib.
if [ -d "$root/../shared/data" ]; then
  texts=("wiki.test.raw:$root/../shared/data/wiki.test.raw"
         "TinyStories:$root/../shared/data/tinystories_valid.txt")
  calib=$root/../shared/data/kjv.txt
else
  texts=("TinyStories:$root/tests/data/tinystories_head.txt")
  calib=$root/tests/data/kjv_head.txt
fi
