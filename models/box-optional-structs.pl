#!/usr/bin/perl
# Boxes every optional field whose type is a struct generated in the same file:
# kopium nests each `Option<Struct>` inline, so an empty VirtualMachine was 4 KiB
# and a cached one cost that much before any content. Reads stdin, writes stdout.
use strict;
use warnings;

local $/;
my $text = <STDIN>;
my %structs = map { $_ => 1 } ($text =~ /^pub struct (\w+)/mg);
$text =~ s/^(\s+pub (?:r#)?\w+: Option<)(\w+)(>,)$/exists $structs{$2} ? "$1Box<$2>$3" : "$1$2$3"/mge;
print $text;
