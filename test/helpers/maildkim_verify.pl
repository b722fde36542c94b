#!/usr/bin/perl
# Verifies every DKIM-Signature of a message with Perl's Mail::DKIM.
# Usage: perl maildkim_verify.pl RECORDS_JSON MESSAGE_FILE
# Prints a JSON list of result strings (pass, fail, invalid, ...), one per
# signature, top to bottom; details go to stderr.
# Debian 12's Mail::DKIM (1.20230212) has no Ed25519 support: its
# ed25519-sha256 signatures come out "invalid" (unsupported algorithm).
use strict;
use warnings;
use JSON::PP;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my ($records_file, $message_file) = @ARGV;
die "usage: $0 RECORDS_JSON MESSAGE_FILE\n" unless defined $message_file;

open(my $rf, '<:raw', $records_file) or die "$records_file: $!\n";
my %records;
{
    local $/;
    my $all = decode_json(<$rf>);
    %records = map { ((lc $_) =~ s/\.$//r, $all->{$_}) } keys %$all;
}
close $rf;

# Answer Mail::DKIM's DNS lookups from the records, never from the network.
{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($domain, $type) = @_;
        my $key = (lc $domain) =~ s/\.$//r;
        if (uc $type eq 'TXT' && exists $records{$key}) {
            $@ = 'NOERROR';
            # A TXT string holds at most 255 octets: split long keys like a zone file would.
            my @parts = unpack('(a255)*', $records{$key});
            return Net::DNS::RR->new(name => $domain, type => 'TXT', txtdata => \@parts);
        }
        $@ = 'NXDOMAIN';
        return;
    };
}

open(my $mf, '<:raw', $message_file) or die "$message_file: $!\n";
my $dkim = Mail::DKIM::Verifier->new();
while (read($mf, my $buf, 65536)) {
    $dkim->PRINT($buf);
}
close $mf;
$dkim->CLOSE();

my @results;
for my $sig ($dkim->signatures) {
    my $detail = $sig->result_detail;
    print STDERR "signature: $detail\n" unless $sig->result eq 'pass';
    push @results, $sig->result;
}
print encode_json(\@results), "\n";
