OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> given = ['../../etc/passwd', 'C:\\\\Users\\\\me\\\\song.mp3', 'a\\x00b\\r\\nc.wav', '', None, '../']\n"
                                               '>>> with own_work():\n'
                                               '...     names = [display_name(name) for name in given]\n'
                                               ">>> assert names == ['passwd', 'song.mp3', 'a b c.wav', 'upload', 'upload', 'upload'], f'got {names}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
