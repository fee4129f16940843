"""Building blocks: which unique LAEs a model relies on (``ranking``), traced to real atoms and
drawn (``pictures``), written as a report with extxyz clusters (``report``)."""
