"""Tests of distgnn.partition (a package so helper imports and module names stay unique)."""
