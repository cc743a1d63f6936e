#!/bin/sh
echo "build.sh placeholder"
